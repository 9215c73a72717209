"""Command line: run a batch (screen or headless), and commands into a running batch.

Every user error ends here as one line on stderr and exit status 2; the engine and
store raise their own one-line errors and this module only prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .items import InputError, load_items
from .store import ChangedKeys, CheckpointError, Store, Totals, default_db_path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: --concurrency auto starts here, and rising latency alone never takes it lower (429/503 can)
AUTO_START = 8
COMMANDS = ("status", "export", "pause", "resume", "skip", "retry", "sim", "demo", "watch")


class UsageError(Exception):
    """A mistake in how tuibatch was called or what it was given: one line, exit 2."""


def say(text: str, *, err: bool = False) -> None:
    """Print for a human or a log; a closed pipe (``| head``, a gone terminal) never stops the batch."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"tuibatch: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _die(f"{message} (see `{self.prog} --help`)")


# ----------------------------------------------------------------------- parsers


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tuibatch", description="Run a JSONL batch through Gemini agents or models, crash-safe. "
                f"Other commands: {', '.join(COMMANDS)} (tuibatch COMMAND --help).")
    p.add_argument("items", type=Path, help="JSONL file: one {\"key\", \"payload\"} object per line")
    p.add_argument("--headless", action="store_true", help="no screen: print progress lines")
    p.add_argument("--db", type=Path, help="checkpoint file (default: beside ITEMS, .tuibatch.db)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--agent", help="managed agent for items that name none (Interactions API)")
    target.add_argument("--model", help="model for items that name none (default gemini-2.5-flash)")
    p.add_argument("--instruction", help="system instruction for items that give none")
    p.add_argument("--concurrency", default="8",
                   help="runs in flight at once (default 8), or auto: AIMD from 8 up to --max-concurrency")
    p.add_argument("--max-concurrency", type=int, default=32, help="ceiling for --concurrency auto")
    p.add_argument("--max-attempts", type=int, default=5, help="launch attempts per item (default 5)")
    p.add_argument("--rpm", type=float, help="requests per minute quota, shared by all workers")
    p.add_argument("--tpm", type=float, help="input tokens per minute quota")
    p.add_argument("--budget", type=float, metavar="USD", help="pause the batch when this much is spent")
    p.add_argument("--prices", type=Path, help="JSON price table overriding the built-in one")
    p.add_argument("--base-url", help="API endpoint (proxy, gateway, simulator); else GOOGLE_GEMINI_BASE_URL")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per API request (default 60)")
    p.add_argument("--poll-interval", type=float, default=1.0, help="first poll delay, seconds (default 1)")
    p.add_argument("--poll-max", type=float, default=15.0, help="longest poll delay, seconds (default 15)")
    p.add_argument("--retry-initial", type=float, default=1.0, help="first retry backoff, seconds")
    p.add_argument("--retry-max", type=float, default=60.0, help="longest retry backoff, seconds")
    p.add_argument("--rerun-changed", action="store_true", help="put keys whose payload changed back to pending")
    p.add_argument("--dry-run", action="store_true", help="count items and estimate tokens and cost; launch nothing")
    p.add_argument("--progress-every", type=float, default=2.0, help="seconds between progress lines (headless)")
    p.add_argument("--quiet", action="store_true", help="headless: no per-event lines, only progress")
    return p


def _db_parser(prog: str, help_text: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"tuibatch {prog}", description=help_text)
    p.add_argument("--db", type=Path, required=True, help="checkpoint file")
    return p


# ----------------------------------------------------------------------- helpers


def _concurrency(value: str) -> tuple[int, bool]:
    if value == "auto":
        return AUTO_START, True
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--concurrency must be a whole number or 'auto', not {value!r}") from None
    if n < 1:
        raise UsageError("--concurrency must be at least 1")
    return n, False


async def _open_existing(path: Path) -> Store:
    try:
        return await Store.open(path)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None


def format_totals(t: Totals, *, elapsed: float | None = None, done_here: int | None = None) -> str:
    c = t.counts
    parts = [f"{c.get('done', 0)}/{t.total} done", f"{c.get('failed', 0)} failed", f"{c.get('skipped', 0)} skipped",
             f"{c.get('pending', 0)} pending", f"{c.get('claimed', 0) + c.get('running', 0)} running"]
    cost = f"${t.cost_usd:.4f}" + (f" (+{t.unpriced} price unknown)" if t.unpriced else "")
    line = (", ".join(parts) + f" | tokens in {t.tokens_in:,} out {t.tokens_out:,} think {t.tokens_thought:,}"
            + f" | {cost}, wasted ${t.wasted_usd:.4f}")
    if elapsed and done_here is not None and elapsed > 0:
        line += f" | {done_here / elapsed * 60:.1f} items/min"
    if t.relaunches:
        line += f" | in-doubt relaunches {t.relaunches}"
    return line


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


# -------------------------------------------------------------------- run batch


async def prepare_store(args: argparse.Namespace) -> tuple[Store, int]:
    """Read the items file whole, then open (or create) the checkpoint and add new keys."""
    items_path: Path = args.items
    db_path: Path = args.db or default_db_path(items_path)
    try:
        data = items_path.read_bytes()
    except OSError:
        data = b""
    digest = hashlib.sha256(data).hexdigest()
    store: Store | None = None
    if db_path.exists():
        store = await _open_existing(db_path)
        meta = await store.meta()
        if meta.get("items_sha256") == digest and not args.rerun_changed:
            return store, int(meta.get("items_count", "0"))
    try:
        items = load_items(items_path)
    except InputError as exc:
        if store:
            await store.close()
        raise UsageError(str(exc)) from None
    if store is None:
        try:
            store = await Store.open(db_path, create=True)
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
    try:
        report = await store.sync_items(items, rerun_changed=args.rerun_changed)
    except ChangedKeys as exc:
        await store.close()
        keys = exc.report.changed
        shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        raise UsageError(
            exc.message or f"{items_path}: payload changed for {len(keys)} key(s) already in {db_path}: {shown};"
            " nothing was changed (use --rerun-changed to run them again)") from None
    await store.set_meta({"items_sha256": digest, "items_count": str(len(items)),
                          "items_file": str(items_path.resolve())})
    if report.added and report.added != len(items):
        say(f"tuibatch: {report.added} new item(s) added from {items_path}", err=True)
    if report.rerun:
        say(f"tuibatch: {report.rerun} changed item(s) put back to pending", err=True)
    return store, len(items)


def _finished_keys(db: Path) -> set[str]:
    """Keys already done or skipped, read without writing (a dry run changes nothing)."""
    import sqlite3

    if not db.exists():
        return set()
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return {k for (k,) in con.execute("SELECT key FROM items WHERE state IN ('done','skipped')")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db}: cannot read checkpoint ({exc})") from None


def _dry_run(args: argparse.Namespace) -> int:
    from .engine import DEFAULT_MODEL
    from .pricing import estimate_tokens, load_prices

    try:
        items = load_items(args.items)
        prices = load_prices(args.prices)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    finished = _finished_keys(args.db or default_db_path(args.items))
    todo = [it for it in items if it.key not in finished]
    tokens = 0
    low = high = 0.0
    unknown = set()
    for it in todo:
        target = it.agent or it.model or args.agent or args.model or DEFAULT_MODEL
        n = estimate_tokens(it.input_text) + estimate_tokens(it.instruction or args.instruction or "")
        tokens += n
        rate = prices.rate_for(target)
        if rate is None:
            unknown.add(target)
            continue
        # output is unknown before the run: bracket it between 0.5× and 4× the input (agents think more)
        low += n * (rate.input + 0.5 * rate.output) / 1e6
        high += n * (rate.input + 4 * max(rate.output, rate.thinking)) / 1e6
    already = f" ({len(items) - len(todo)} already finished in the checkpoint, not counted)" if finished else ""
    say(f"{len(todo)} items to run{already}, about {tokens:,} input tokens (local estimate, ≈4 characters a token)")
    say(f"estimated cost ${low:.4f} – ${high:.4f} (an estimate: output length is unknown until runs finish)")
    if unknown:
        say(f"price unknown for: {', '.join(sorted(unknown))}")
    return EXIT_OK


async def run_headless(args: argparse.Namespace) -> int:
    from .backends.gemini import CredentialsError, GeminiBackend, resolve_credentials
    from .engine import Engine, EngineConfig
    from .policy import Backoff
    from .pricing import load_prices

    concurrency, adaptive = _concurrency(args.concurrency)
    try:
        prices = load_prices(args.prices)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    try:
        creds = resolve_credentials(base_url=args.base_url)
    except CredentialsError as exc:
        raise UsageError(str(exc)) from None
    store, _count = await prepare_store(args)
    ctl = await store.control()
    if ctl.get("paused") == "1" and ctl.get("pause_kind") == "batch":
        await store.set_paused(False, f"new run clears the earlier pause ({ctl.get('pause_reason', '')})")
    elif ctl.get("paused") == "1":
        say("tuibatch: the batch is paused; `tuibatch resume --db ...` (or p in the app) continues it", err=True)
    backend = GeminiBackend(creds, timeout_s=args.timeout)
    cfg = EngineConfig(
        concurrency=concurrency, adaptive=adaptive, max_concurrency=args.max_concurrency,
        max_attempts=args.max_attempts, agent=args.agent, model=args.model, instruction=args.instruction,
        poll_initial=args.poll_interval, poll_max=args.poll_max,
        backoff=Backoff(initial=args.retry_initial, maximum=args.retry_max),
        budget_usd=args.budget, rpm=args.rpm, tpm=args.tpm,
    )

    def log(msg: str) -> None:
        if not args.quiet:
            say(f"{_stamp()} {msg}")

    engine = Engine(store, backend, prices, cfg, log=log)
    _install_signals(engine)
    start_totals = await store.totals()
    t0 = time.monotonic()

    async def report() -> None:
        while True:
            await asyncio.sleep(args.progress_every)
            t = await store.totals()
            say(f"{_stamp()} {format_totals(t, elapsed=time.monotonic() - t0, done_here=t.finished - start_totals.finished)}")

    reporter = asyncio.create_task(report())
    try:
        await engine.run()
    finally:
        reporter.cancel()
        await backend.close()
    t = await store.totals()
    paused, reason, _kind = engine.paused
    await store.close()
    say(f"{_stamp()} {format_totals(t, elapsed=time.monotonic() - t0, done_here=t.finished - start_totals.finished)}")
    if engine.interrupted:
        say("tuibatch: stopped; every recorded run id is kept — run the same command to resume", err=True)
        return EXIT_INTERRUPTED
    left = t.counts.get("pending", 0) + t.counts.get("claimed", 0) + t.counts.get("running", 0)
    if paused and left:
        say(f"tuibatch: batch paused with {left} item(s) left: {reason}", err=True)
        return EXIT_PAUSED
    return EXIT_FAILED if t.counts.get("failed", 0) else EXIT_OK


def _install_signals(engine: Any) -> None:
    loop = asyncio.get_running_loop()
    hits = {"n": 0}

    def on_signal(signum: int) -> None:
        hits["n"] += 1
        if hits["n"] == 1:
            engine.stop()
            say("\ntuibatch: stopping — no new launches; run ids are kept (press Ctrl-C again to exit now)", err=True)
        else:
            os._exit(EXIT_INTERRUPTED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):
            pass


# ------------------------------------------------------------------- commands


async def cmd_status(args: argparse.Namespace) -> int:
    store = await _open_existing(args.db)
    try:
        t = await store.totals()
        ctl = await store.control()
    finally:
        await store.close()
    for state in ("pending", "claimed", "running", "done", "failed", "skipped"):
        say(f"{state:>8}  {t.counts.get(state, 0)}")
    say(f"{'total':>8}  {t.total}")
    say(f"tokens in {t.tokens_in:,}, out {t.tokens_out:,}, thinking {t.tokens_thought:,}")
    unknown = f" (+ {t.unpriced} item(s) with unknown price)" if t.unpriced else ""
    say(f"cost ${t.cost_usd:.4f}{unknown}; wasted ${t.wasted_usd:.4f}; in-doubt relaunches {t.relaunches}")
    if ctl.get("paused") == "1":
        say(f"paused: {ctl.get('pause_reason') or 'by user'}")
    return EXIT_OK


def export_record(row: Any) -> dict[str, Any]:
    error = None
    if row.state in ("failed", "skipped") and (row.err_message or row.err_code):
        error = {"class": row.err_class, "code": row.err_code, "message": row.err_message}
    return {
        "key": row.key, "status": row.state, "output": row.output, "error": error,
        "attempts": row.attempts,
        "usage": {"input_tokens": row.tokens_in, "output_tokens": row.tokens_out,
                  "thought_tokens": row.tokens_thought},
        "cost_usd": round(row.cost_usd, 8) if row.price_known else None,
        "run_id": row.run_id,
    }


async def cmd_export(args: argparse.Namespace) -> int:
    store = await _open_existing(args.db)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        offset = 0
        while True:
            rows = await store.rows(limit=2000, offset=offset)
            if not rows:
                break
            for row in rows:
                out.write(json.dumps(export_record(row), ensure_ascii=False) + "\n")
            offset += len(rows)
    finally:
        if out is not sys.stdout:
            out.close()
        await store.close()
    return EXIT_OK


async def cmd_pause(args: argparse.Namespace, paused: bool) -> int:
    store = await _open_existing(args.db)
    try:
        changed = await store.set_paused(paused, "by user" if paused else "resumed by user", kind="user")
    finally:
        await store.close()
    say(("paused" if paused else "resumed") + ("" if changed else " (already)"))
    return EXIT_OK


async def cmd_skip(args: argparse.Namespace) -> int:
    store = await _open_existing(args.db)
    try:
        result = await store.skip(args.keys)
    finally:
        await store.close()
    for key, what in result.items():
        say(f"{key}: {what}")
    return EXIT_USAGE if any(v == "unknown key" for v in result.values()) else EXIT_OK


async def cmd_retry(args: argparse.Namespace) -> int:
    if not args.keys and not args.failed:
        raise UsageError("retry needs KEY… or --failed")
    store = await _open_existing(args.db)
    try:
        n = await store.retry(args.keys, failed=args.failed)
    finally:
        await store.close()
    say(f"{n} item(s) back to pending")
    return EXIT_OK


def _command(name: str, argv: Sequence[str]) -> int:
    if name == "status":
        a = _db_parser("status", "Counts per state and the cost so far.").parse_args(argv)
        return asyncio.run(cmd_status(a))
    if name == "export":
        p = _db_parser("export", "One JSON object per item, in the items' order.")
        p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
        return asyncio.run(cmd_export(p.parse_args(argv)))
    if name in ("pause", "resume"):
        a = _db_parser(name, f"{name.capitalize()} claiming, for every worker on the checkpoint.").parse_args(argv)
        return asyncio.run(cmd_pause(a, name == "pause"))
    if name == "skip":
        p = _db_parser("skip", "Skip items; a running one is cancelled on the service first.")
        p.add_argument("keys", nargs="+")
        return asyncio.run(cmd_skip(p.parse_args(argv)))
    if name == "retry":
        p = _db_parser("retry", "Put failed or skipped items back to pending.")
        p.add_argument("keys", nargs="*")
        p.add_argument("--failed", action="store_true", help="every failed item")
        return asyncio.run(cmd_retry(p.parse_args(argv)))
    if name == "sim":
        from . import sim

        p = _Parser(prog="tuibatch sim", description="Local Gemini API simulator on 127.0.0.1.")
        sim.add_arguments(p)
        a = p.parse_args(argv)
        try:
            cfg = sim.config_from_args(a)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:
            asyncio.run(sim.serve(cfg))
        except KeyboardInterrupt:
            pass
        return EXIT_OK
    if name == "demo":
        from .demo import main as demo_main

        return demo_main(argv)
    if name == "watch":
        p = _db_parser("watch", "Attach the screen to a batch a headless worker runs.")
        a = p.parse_args(argv)
        from .ui import run_watch

        return run_watch(a.db)
    raise UsageError(f"unknown command {name!r}")


def run_batch(argv: Sequence[str]) -> int:
    args = _run_parser().parse_args(argv)
    if args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    _concurrency(args.concurrency)
    if args.dry_run:
        return _dry_run(args)
    if args.headless:
        return asyncio.run(run_headless(args))
    from .ui import run_app

    return run_app(args, list(argv))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            code = _command(argv[0], argv[1:])
        else:
            code = run_batch(argv)
    except UsageError as exc:
        _die(str(exc))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = EXIT_OK
    raise SystemExit(code)
