"""``--mode batch|auto``: the run's wiring when model items go through Batch API jobs.

The items file is checked before the checkpoint is opened: in ``--mode batch`` an agent item is
one line and exit 2, and so is a request larger than a job may be (``--job-bytes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace

from .. import logs
from ..items import InputError, read_file
from ..options import RunOptions, UsageError
from ..policy import Backoff
from ..states import ExitCode, PauseKind
from ..store import Store
from ..store.errors import StorageError
from .jobs import BatchConfig, Driver
from .packing import INLINE_MAX_BYTES, Limits

Probe = Callable[[str], None]
log = logging.getLogger("tuibatch.batch")


def check_items(options: RunOptions) -> None:
    """Refuse what batch mode cannot send, naming the file and line; writes nothing."""
    from ..itemsfile import iter_specs
    from ..runner import read_batch

    defaults = read_batch(options)
    try:
        data = read_file(options.items)
        for item, spec in iter_specs(options.items, data, defaults):
            where = f"{options.items}:{spec.line}"
            if spec.agent and options.mode == "batch":
                raise UsageError(
                    f"{where}: item {item.key!r} runs agent {spec.agent!r}; the Batch API runs "
                    "models only (use --mode auto to run agent items interactively)"
                )
            size = len(spec.request_json.encode())
            if not spec.agent and size > options.job_bytes:
                raise UsageError(
                    f"{where}: item {item.key!r}: its request is {size:,} bytes, over the job "
                    f"limit of {options.job_bytes:,} (--job-bytes)"
                )
    except InputError as exc:
        raise UsageError(str(exc)) from None


def batch_config(options: RunOptions) -> BatchConfig:
    inline = int(os.environ.get("TUIBATCH_BATCH_INLINE_MAX", INLINE_MAX_BYTES))
    return BatchConfig(
        max_attempts=options.max_attempts,
        limits=Limits(options.job_items, options.job_bytes, min(inline, options.job_bytes)),
        poll_initial=options.poll_interval,
        poll_max=options.poll_max,
        adopt_wait=min(5.0, options.poll_interval),
        backoff=Backoff(initial=options.retry_initial, maximum=options.retry_max),
        invalid_output_retries=options.invalid_output_retries,
        accept_truncated=options.accept_truncated,
    )


async def run_batch_mode(options: RunOptions, *, probe: Probe | None = None) -> ExitCode:
    from ..backends.gemini import GeminiBackend
    from ..backends.gemini_batch import BatchApi
    from ..engine import Engine
    from ..runner import engine_config, format_totals, open_run, outcome

    logs.configure(options.log_level or "info")
    check_items(options)
    prices, creds, store = await open_run(options)
    key = creds.api_key or ""
    pause = await store.pause_state()
    if pause.active and pause.kind is PauseKind.BATCH:
        await store.set_paused(False, f"new run clears the earlier pause ({pause.reason})")
    backend = GeminiBackend(creds, timeout_s=options.timeout)
    api = BatchApi(backend.client, lambda s: s.replace(key, "***") if key else s)
    meta = await store.meta()
    driver = Driver(
        store,
        api,
        prices,
        batch_config(options),
        batch_id=meta.get("batch_id", "b"),
        default_model=options.model or "gemini-2.5-flash",
        probe=probe,
    )
    engine = None
    if options.mode == "auto":
        await driver.plan()  # model items into jobs first: the interactive engine gets the rest
        cfg = replace(engine_config(options), only_agents=True)
        engine = Engine(store, backend, prices, cfg, probe=probe)
    interrupted = _install_signals(driver, engine)
    t0 = time.monotonic()

    async def report() -> None:
        while True:
            await asyncio.sleep(options.progress_every)
            logs.progress(format_totals(await store.totals(), elapsed=time.monotonic() - t0))

    reporter = asyncio.create_task(report())
    role = "batch" if options.mode == "batch" else "worker"
    beating = asyncio.create_task(heartbeat(store, role, driver))
    try:
        tasks = [driver.run()] + ([engine.run()] if engine is not None else [])
        await asyncio.gather(*tasks)
    finally:
        reporter.cancel()
        beating.cancel()
        await backend.close()
    t = await store.totals()
    await store.close()
    logs.progress(format_totals(t, elapsed=time.monotonic() - t0))
    logs.notice.info(
        "batch mode: %d job(s) created, %d adopted, %d poll(s)",
        driver.created,
        driver.adopted,
        driver.polls,
    )
    paused = driver.paused_reason is not None or (engine is not None and engine.pause.active)
    reason = driver.paused_reason or (engine.pause.reason if engine is not None else "")
    return outcome(t, interrupted=interrupted["hit"], paused=paused, reason=reason)


async def heartbeat(store: Store, role: str, driver: Driver) -> None:
    """Forever: register and beat in ``workers`` (``tuibatch watch`` and the app see a live
    batch worker; ``close()`` retires it), and renew the leases of the jobs this process drives,
    every quarter of the lease, like the interactive engine's heartbeat."""
    every = max(1.0, store.lease_seconds / 4)
    while True:
        try:
            await store.beat(role, f"batch mode: {driver.created} job(s) created")
            await store.renew_jobs()
        except StorageError as exc:  # the driver meets the same error and stops the run
            log.warning("heartbeat: %s", exc)
        await asyncio.sleep(every)


def _install_signals(driver: Driver, engine: object | None) -> dict[str, bool]:
    loop = asyncio.get_running_loop()
    state = {"hit": False}

    def on_signal() -> None:
        if state["hit"]:
            os._exit(ExitCode.INTERRUPTED)
        state["hit"] = True
        driver.stop()
        stop = getattr(engine, "stop", None)
        if stop is not None:
            stop()
        logs.notice.info(
            "stopping — recorded jobs keep running on the service; run again to collect"
        )

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):
            pass
    return state
