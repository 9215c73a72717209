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
from .safe_text import visible
from .states import ITEM_STATES, ExitCode, ItemState, PauseKind
from .store import Row, Totals
from .store.monitor import CauseLine

__all__ = ["export", "pause", "retry", "skip", "status"]


async def status(db: Path) -> ExitCode:
    store = await open_existing(db, readonly=True)
    try:
        t = await store.totals()
        pause = await store.pause_state()
        waste = await store.waste_by_cause_monitor()
        failures = await store.failures_by_cause_monitor()
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
    logs.out.info(
        "cost $%.4f%s; wasted $%.4f; in-doubt relaunches %d",
        t.cost_usd,
        cost_caveat(t),
        t.wasted_usd,
        t.relaunches,
    )
    for line in breakdown(waste, failures):
        logs.out.info("%s", line)
    if pause.active:
        logs.out.info("paused: %s", pause.reason or "by user")
    return ExitCode.OK


def cost_caveat(t: Totals) -> str:
    """What the cost figure leaves out: items with unknown usage or an unknown price."""
    parts = []
    if t.usage_unknown:
        parts.append(f"{t.usage_unknown} item(s) cost unknown: no usage reported")
    if t.unpriced > t.usage_unknown:
        parts.append(f"{t.unpriced - t.usage_unknown} item(s) with unknown price")
    return f" (+ {'; '.join(parts)})" if parts else ""


def breakdown(waste: Sequence[CauseLine], failures: Sequence[CauseLine]) -> list[str]:
    """Where the waste went and what failed, by cause, one example each: what to fix."""
    lines = []
    spent = [w for w in waste if w.cost_usd > 0 or w.count]
    if spent:
        lines.append(
            "wasted by cause: "
            + ", ".join(
                f"{visible(w.cause)} "
                + (f"${w.cost_usd:.4f}" if w.cost_usd else "cost unknown")
                + f" ({w.count})"
                for w in spent
            )
        )
    for f in failures:
        example = visible(f.example or "")[:160]
        lines.append(
            f"failed: {f.count} × {visible(f.cause)} — e.g. {visible(f.example_key or '?')}:"
            f" {example}"
        )
    return lines


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
        for key in keys:
            row = await store.get_by_key(key)
            if row is not None and row.state is ItemState.LOST:
                logs.out.info("%s", relaunch_cost(row))
        n = await store.retry(list(keys), failed=failed)
    finally:
        await store.close()
    logs.out.info("%d item(s) back to pending", n)
    return ExitCode.OK


def relaunch_cost(row: Row) -> str:
    """What relaunching a lost item may cost: its run may still be going and billing."""
    from .pricing import load_prices

    target = row.run_target or row.agent or row.model
    worst = load_prices().worst_case(target)
    estimate = f"up to ${worst:.4f} more (worst case)" if worst is not None else "an unknown amount"
    return (
        f"{visible(row.key)}: relaunching a lost run may pay twice: paid so far"
        f" ${row.cost_usd:.4f}; a new run costs {estimate}"
    )
