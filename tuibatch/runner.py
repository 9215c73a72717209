"""The wiring of one run: checkpoint, credentials, backend, engine, signals, progress, exit status.

The command line (``cli.py``), the demo and the app's worker all come here with a
:class:`~tuibatch.options.RunOptions`; nothing here parses flags. What a run prints goes
through :mod:`tuibatch.logs` (escaped, with the API key redacted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import logs
from .items import InputError, read_file
from .options import RunOptions, UsageError
from .states import ExitCode, ItemState, PauseKind
from .store import ChangedKeys, CheckpointError, Store, Totals, fallback
from .store.errors import StorageError

if TYPE_CHECKING:
    from .backends.gemini import Credentials, GeminiBackend
    from .engine import Engine, EngineConfig
    from .pricing import Prices
    from .request_spec import SpecDefaults

#: a test-only crash point callback, handed to the engine: ``probe("after_launch")``
Probe = Callable[[str], None]


def lease_seconds() -> float:
    """A worker's lease: 120 s, or ``TUIBATCH_LEASE_SECONDS`` (an advanced setting for tests
    and for machines that pause workers: a shorter lease hands a stopped worker's items over
    sooner)."""
    try:
        return max(1.0, float(os.environ.get("TUIBATCH_LEASE_SECONDS", "")))
    except ValueError:
        return 120.0


async def open_existing(path: Path, *, readonly: bool = False, lease: float | None = None) -> Store:
    """An existing checkpoint (read-only for commands that only read); refusal is a UsageError."""
    try:
        return await Store.open(path, readonly=readonly, lease_seconds=lease or lease_seconds())
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None


def format_totals(t: Totals, *, elapsed: float | None = None, done_here: int | None = None) -> str:
    """The progress line: counts, tokens, cost, waste, throughput."""
    c = t.counts
    in_flight = c.get(ItemState.CLAIMED, 0) + c.get(ItemState.RUNNING, 0)
    parts = [
        f"{c.get(ItemState.DONE, 0)}/{t.total} done",
        f"{c.get(ItemState.FAILED, 0)} failed",
        f"{c.get(ItemState.SKIPPED, 0)} skipped",
        f"{c.get(ItemState.PENDING, 0)} pending",
        f"{in_flight} running",
    ]
    if c.get(ItemState.LOST, 0):
        parts.append(f"{c[ItemState.LOST]} lost")
    cost = f"${t.cost_usd:.4f}" + (f" (+{t.unpriced} price unknown)" if t.unpriced else "")
    line = (
        ", ".join(parts)
        + f" | tokens in {t.tokens_in:,} out {t.tokens_out:,} think {t.tokens_thought:,}"
        + f" | {cost}, wasted ${t.wasted_usd:.4f}"
    )
    if elapsed and done_here is not None and elapsed > 0:
        line += f" | {done_here / elapsed * 60:.1f} items/min"
    if t.relaunches:
        line += f" | in-doubt relaunches {t.relaunches}"
    return line


def _left(t: Totals) -> int:
    c = t.counts
    return c.get(ItemState.PENDING, 0) + c.get(ItemState.CLAIMED, 0) + c.get(ItemState.RUNNING, 0)


# -------------------------------------------------------------------- checkpoint


def read_batch(options: RunOptions) -> SpecDefaults:
    """The batch's side of every request (config file, flags, schema), checked before any file
    is opened for writing; a problem is one line (UsageError)."""
    from .itemsfile import batch_defaults

    try:
        return batch_defaults(options)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def _changed_message(options: RunOptions, exc: ChangedKeys) -> str:
    keys = exc.report.changed
    shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
    return exc.message or (
        f"{options.items}: what is sent changed (payload, config, schema or target) for "
        f"{len(keys)} key(s) already in {options.db}: {shown}; nothing was changed "
        "(use --rerun-changed to run them again)"
    )


async def prepare_store(options: RunOptions) -> tuple[Store, int]:
    """Read the items file whole, then open (or create) the checkpoint and add new keys."""
    from .itemsfile import batch_digest, parse_lines

    defaults = read_batch(options)
    items_path, db_path = options.items, options.db
    try:
        data = read_file(items_path)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    digest = batch_digest(data, defaults)
    store: Store | None = None
    if db_path.exists():
        store = await open_existing(db_path)
        await fold_kept_runs(store)
        meta = await store.meta()
        if digest is not None and meta.get("items_sha256") == digest and not options.rerun_changed:
            return store, int(meta.get("items_count", "0"))
    try:
        items = parse_lines(items_path, data, defaults)
        del data  # the items hold what they need; the file's bytes are not kept for the run
        if not items:
            raise InputError(f"{items_path}: no items (the file is empty)")
    except InputError as exc:
        if store:
            await store.close()
        raise UsageError(str(exc)) from None
    if store is None:
        try:
            store = await Store.open(db_path, create=True, lease_seconds=lease_seconds())
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
    try:
        report = await store.sync_items(items, rerun_changed=options.rerun_changed)
    except ChangedKeys as exc:
        await store.close()
        raise UsageError(_changed_message(options, exc)) from None
    await store.set_meta(
        {
            "items_sha256": digest or "",
            "items_count": str(len(items)),
            "items_file": str(items_path.resolve()),
        }
    )
    if report.added and report.added != len(items):
        logs.notice.info("%d new item(s) added from %s", report.added, items_path)
    if report.rerun:
        logs.notice.info("%d changed item(s) put back to pending", report.rerun)
    return store, len(items)


async def fold_kept_runs(store: Store) -> None:
    """Run ids kept aside by a run that could not write the checkpoint: polled, not relaunched."""
    n = await store.fold_kept_runs()
    if n:
        logs.notice.info(
            "%d run id(s) kept aside by an earlier run are back in the checkpoint: polling them", n
        )


def storage_line(exc: StorageError, kept: list[fallback.KeptRun], db: Path) -> str:
    """The one line a run that cannot write its checkpoint ends with; keeps the run ids."""
    why = str(exc)
    problem = why[why.find("(") :] if "(" in why else f"({why})"
    head = f"cannot write the checkpoint {problem}"
    if not kept:
        return f"{head}; no run id was lost; free space and run the same command to resume"
    try:
        where = fallback.keep(db, kept)
    except OSError as err:
        ids = " ".join(f"{r.key}={r.run_id}" for r in kept)
        return (
            f"{head}; could not write {fallback.runids_path(db)} either ({err.strerror}): "
            f"{len(kept)} run id(s) to poll, not relaunch: {ids}"
        )
    return (
        f"{head}: {len(kept)} run id(s) kept in {where}; "
        "free space and run the same command to resume"
    )


# --------------------------------------------------------------------------- run


def engine_config(options: RunOptions) -> EngineConfig:
    from .engine import EngineConfig
    from .policy import Backoff

    return EngineConfig(
        concurrency=options.concurrency,
        adaptive=options.adaptive,
        max_concurrency=options.max_concurrency,
        max_attempts=options.max_attempts,
        agent=options.agent,
        model=options.model,
        instruction=options.instruction,
        poll_initial=options.poll_interval,
        poll_max=options.poll_max,
        backoff=Backoff(initial=options.retry_initial, maximum=options.retry_max),
        budget_usd=options.budget,
        rpm=options.rpm,
        tpm=options.tpm,
        accept_truncated=options.accept_truncated,
        invalid_output_retries=options.invalid_output_retries,
        stuck_after=options.stuck_after,
        max_run_seconds=options.max_run_seconds,
    )


def run(options: RunOptions, *, probe: Probe | None = None) -> ExitCode:
    """Run the batch headless until it is finished, paused or stopped; the exit status."""
    try:
        return asyncio.run(run_headless(options, probe=probe))
    except StorageError as exc:  # at creation or start: nothing launched, nothing to keep
        logs.notice.error("%s", storage_line(exc, [], options.db))
        return ExitCode.STORAGE


async def open_run(options: RunOptions) -> tuple[Prices, Credentials, Store]:
    """What every run starts with: prices, credentials (the key redacted from every log line
    from then on) and the checkpoint with the items file's new keys in; bad input is a
    ``UsageError``."""
    from .backends.gemini import CredentialsError, resolve_credentials
    from .pricing import load_prices

    logs.configure(options.log_level or "info")
    try:
        prices = load_prices(options.prices)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    try:
        creds = resolve_credentials(base_url=options.base_url)
    except CredentialsError as exc:
        raise UsageError(str(exc)) from None
    logs.configure(options.log_level or "info", secrets=[creds.api_key or ""])
    store, _count = await prepare_store(options)
    return prices, creds, store


async def run_headless(options: RunOptions, *, probe: Probe | None = None) -> ExitCode:
    from .backends.gemini import GeminiBackend
    from .engine import Engine

    if options.mode != "interactive":  # model items through Gemini Batch API jobs
        from .batchmode.run import run_batch_mode

        return await run_batch_mode(options, probe=probe)
    prices, creds, store = await open_run(options)
    from .batchmode.notice import open_jobs_line

    if held := await open_jobs_line(store, options.db):  # items a Batch API job may deliver
        logs.notice.warning("%s", held)
    pause = await store.pause_state()
    if pause.active and pause.kind is PauseKind.BATCH:
        await store.set_paused(False, f"new run clears the earlier pause ({pause.reason})")
    elif pause.active:
        logs.notice.info(
            "the batch is paused; `tuibatch resume --db %s` (or p in the app) continues it",
            options.db,
        )
    if options.no_sdk_speedup:
        os.environ["TUIBATCH_SDK_SPEEDUP"] = "0"
    backend = GeminiBackend(creds, timeout_s=options.timeout)
    logging.getLogger("tuibatch.backends").debug("SDK speed-up: %s", backend.speedup.reason)
    engine = Engine(store, backend, prices, engine_config(options), probe=probe)
    install_signals(engine)
    start = await store.totals()
    t0 = time.monotonic()

    def line(t: Totals) -> str:
        return format_totals(
            t, elapsed=time.monotonic() - t0, done_here=t.finished - start.finished
        )

    async def report() -> None:
        while True:
            await asyncio.sleep(options.progress_every)
            since = store.waiting_since
            if since is not None:  # the store's thread waits for the lock: no totals now
                waited = time.time() - since
                logs.progress("waiting for the checkpoint: locked for %.0fs", waited)
                continue
            logs.progress(line(await store.totals()))

    reporter = asyncio.create_task(report())
    fallback.reserve(options.db)
    try:
        await engine.run()
        # no route to the API paused the batch: wait for the network, then carry on
        while _network_lost(engine) and await _network_back(backend, engine):
            await store.set_paused(False, "the API answers again: resuming")
            engine = Engine(store, backend, prices, engine_config(options), probe=probe)
            install_signals(engine)
            await engine.run()
    finally:
        reporter.cancel()
        await backend.close()
    if engine.storage_error is not None:
        with contextlib.suppress(Exception):
            await store.close()
        logs.notice.error("%s", storage_line(engine.storage_error, engine.kept_runs, options.db))
        return ExitCode.STORAGE
    fallback.unreserve(options.db)
    t = await store.totals()
    waste, failures = await store.waste_by_cause_monitor(), await store.failures_by_cause_monitor()
    await store.close()
    logs.progress(line(t))
    from .commands import breakdown

    for summary in breakdown(waste, failures):  # where the waste went, what to fix
        logs.notice.info("%s", summary)
    return outcome(
        t, interrupted=engine.interrupted, paused=engine.pause.active, reason=engine.pause.reason
    )


def _network_lost(engine: Engine) -> bool:
    pause = engine.pause
    return (
        not engine.interrupted
        and engine.storage_error is None
        and pause.active
        and pause.kind is PauseKind.BATCH
        and "cannot reach the API" in pause.reason
    )


async def _network_back(backend: GeminiBackend, engine: Engine) -> bool:
    """Probe the API (a free models list) until it answers or the user stops; True when it does.

    Any answer, even an error, means the network is back: what it says is for the engine to judge.
    """
    every = float(os.environ.get("TUIBATCH_NETWORK_PROBE_SECONDS", "15"))
    logs.notice.warning(
        "cannot reach the API: the batch is paused and nothing was failed; trying again every"
        " %gs (Ctrl-C stops)",
        every,
    )
    while not engine.interrupted:
        deadline = time.monotonic() + every
        while time.monotonic() < deadline and not engine.interrupted:
            await asyncio.sleep(min(0.2, every))
        if engine.interrupted:
            break
        from .policy import Failure

        try:
            await backend.list_models()
        except Failure as f:
            if f.unreachable:
                continue
        logs.notice.info("the API answers again: resuming")
        return True
    return False


def outcome(t: Totals, *, interrupted: bool, paused: bool, reason: str) -> ExitCode:
    """The exit status of a run that ended with totals *t*, with its one line for the user."""
    if interrupted:
        logs.notice.info("stopped; every recorded run id is kept — run the same command to resume")
        return ExitCode.INTERRUPTED
    left = _left(t)
    if paused and left:
        logs.notice.info("batch paused with %d item(s) left: %s", left, reason)
        return ExitCode.PAUSED
    if t.counts.get(ItemState.FAILED, 0) or t.counts.get(ItemState.LOST, 0):
        return ExitCode.FAILED
    return ExitCode.OK


def install_signals(engine: Engine) -> None:
    """First Ctrl-C / SIGTERM: stop launching, keep run ids, exit soon. Second: exit now."""
    loop = asyncio.get_running_loop()
    hits = {"n": 0}

    def on_signal(signum: int) -> None:
        hits["n"] += 1
        if hits["n"] == 1:
            engine.stop()
            try:  # end the line the terminal echoed ^C on
                if signum == signal.SIGINT and sys.stderr.isatty():
                    sys.stderr.write("\n")
            except (OSError, ValueError):
                pass
            logs.notice.info(
                "stopping — no new launches; run ids are kept (press Ctrl-C again to exit now)"
            )
        else:
            os._exit(ExitCode.INTERRUPTED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):
            pass
