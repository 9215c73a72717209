"""The commands into a checkpoint from any terminal: status, export, pause, resume, skip, retry.

They open the checkpoint (read-only for status and export), do one thing and print the
result through :mod:`tuibatch.logs`, so keys and service text are shown escaped. ``export``
lives in :mod:`tuibatch.export`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import logs
from .export import export
from .options import UsageError
from .runner import open_existing
from .states import ITEM_STATES, ExitCode, ItemState, PauseKind

__all__ = ["export", "pause", "retry", "skip", "status"]


async def status(db: Path) -> ExitCode:
    store = await open_existing(db, readonly=True)
    try:
        t = await store.totals()
        pause = await store.pause_state()
    finally:
        await store.close()
    for state in ITEM_STATES:
        if state is ItemState.LOST and not t.counts.get(state, 0):
            continue
        logs.out.info("%8s  %d", state, t.counts.get(state, 0))
    logs.out.info("%8s  %d", "total", t.total)
    logs.out.info(
        "tokens in %s, out %s, thinking %s",
        f"{t.tokens_in:,}",
        f"{t.tokens_out:,}",
        f"{t.tokens_thought:,}",
    )
    unknown = f" (+ {t.unpriced} item(s) with unknown price)" if t.unpriced else ""
    logs.out.info(
        "cost $%.4f%s; wasted $%.4f; in-doubt relaunches %d",
        t.cost_usd,
        unknown,
        t.wasted_usd,
        t.relaunches,
    )
    if pause.active:
        logs.out.info("paused: %s", pause.reason or "by user")
    return ExitCode.OK


async def pause(db: Path, paused: bool) -> ExitCode:
    store = await open_existing(db)
    try:
        reason = "by user" if paused else "resumed by user"
        changed = await store.set_paused(paused, reason, kind=PauseKind.USER)
    finally:
        await store.close()
    logs.out.info("%s%s", "paused" if paused else "resumed", "" if changed else " (already)")
    return ExitCode.OK


async def skip(db: Path, keys: Sequence[str]) -> ExitCode:
    store = await open_existing(db)
    try:
        result = await store.skip(list(keys))
    finally:
        await store.close()
    for key, what in result.items():
        logs.out.info("%s: %s", key, what)
    return ExitCode.USAGE if any(v == "unknown key" for v in result.values()) else ExitCode.OK


async def retry(db: Path, keys: Sequence[str], *, failed: bool) -> ExitCode:
    if not keys and not failed:
        raise UsageError("retry needs KEY… or --failed")
    store = await open_existing(db)
    try:
        n = await store.retry(list(keys), failed=failed)
    finally:
        await store.close()
    logs.out.info("%d item(s) back to pending", n)
    return ExitCode.OK
