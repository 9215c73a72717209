"""The command line: parse, then hand over. Nothing here runs a batch or opens a checkpoint.

``tuibatch ITEMS [flags]`` is the run command (its flags live in :mod:`tuibatch.options`; the
wiring of a run in :mod:`tuibatch.runner`); ``tuibatch COMMAND …`` are the commands into a
checkpoint (:mod:`tuibatch.commands`), the simulator, the demo and ``watch``. Every user error
ends here as one line on stderr and exit status 2; the parsers never guess an abbreviated flag.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from . import logs
from .options import RunOptions, UsageError, add_run_arguments
from .states import ITEM_STATES, ExitCode

#: ``tuibatch export --format``
EXPORT_FORMATS = ("jsonl", "csv", "parquet")
ITEM_STATE_NAMES = tuple(str(s) for s in ITEM_STATES)

#: the run command's own name; ``tuibatch ITEMS …`` means ``tuibatch run ITEMS …``
RUN = "run"
COMMANDS = (
    RUN,
    "status",
    "export",
    "pause",
    "resume",
    "skip",
    "retry",
    "sim",
    "demo",
    "watch",
    "doctor",
    "cancel-job",
    "cleanup-jobs",
)


class _Parser(argparse.ArgumentParser):
    """One line and exit 2 on a usage error; never a prefix match for a long flag."""

    def __init__(self, *args: object, **kw: object) -> None:
        kw["allow_abbrev"] = False
        super().__init__(*args, **kw)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _db_parent(*, required: bool) -> _Parser:
    p = _Parser(add_help=False)
    p.add_argument(
        "--db",
        type=Path,
        required=required,
        help="checkpoint file"
        + ("" if required else " (default: beside ITEMS, ITEMS.tuibatch.db)"),
    )
    return p


def build_parser(command: str | None = None) -> tuple[_Parser, dict[str, _Parser]]:
    """The parser and its subcommand parsers (the simulator's flags only when *command* is sim)."""
    top = _Parser(
        prog="tuibatch",
        description="Run a JSONL batch through Gemini agents or models,"
        " crash-safe. `tuibatch ITEMS …` runs a batch (`tuibatch run --help`).",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    db, run_db = _db_parent(required=True), _db_parent(required=False)
    parsers: dict[str, _Parser] = {}

    def add(
        name: str,
        help_text: str,
        parents: Sequence[_Parser] = (db,),
        prog: str | None = None,
        epilog: str | None = None,
    ) -> _Parser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=list(parents),
            prog=prog,
            epilog=epilog,
        )
        parsers[name] = p
        return p

    add_run_arguments(
        add(
            RUN,
            "Run a JSONL batch (the default command: `tuibatch ITEMS …`).",
            (run_db,),
            prog="tuibatch",
            epilog=f"Other commands: {', '.join(COMMANDS[1:])} (tuibatch COMMAND --help).",
        )
    )
    add("status", "Counts per state and the cost so far.")
    p = add(
        "export",
        "Every item's input and result, in the items' order: JSONL (one object per item), "
        "CSV or Parquet.",
    )
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="jsonl (default), csv, or parquet (needs pyarrow: pip install 'tuibatch[parquet]'); "
        "by default from the -o file's extension",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=ITEM_STATE_NAMES,
        metavar="STATE",
        help=f"only items in this state (repeatable): {', '.join(ITEM_STATE_NAMES)}",
    )
    add("pause", "Pause claiming, for every worker on the checkpoint.")
    add("resume", "Resume claiming, for every worker on the checkpoint.")
    add("skip", "Skip items; a running one is cancelled on the service first.").add_argument(
        "keys", nargs="+", metavar="KEY"
    )
    p = add("retry", "Put failed or skipped items back to pending.")
    p.add_argument("keys", nargs="*", metavar="KEY")
    p.add_argument("--failed", action="store_true", help="every failed item")
    p = add("sim", "Local Gemini API simulator on 127.0.0.1.", ())
    if command == "sim":
        from . import sim

        sim.add_arguments(p)
    p = add("demo", "A 200-item batch against the local simulator (no API key needed).", ())
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("tuibatch-demo"),
        help="where to write the sample batch (default tuibatch-demo)",
    )
    p.add_argument("--items", type=int, default=200, help="how many items (default 200)")
    p.add_argument("--headless", action="store_true", help="print progress instead of the app")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the previous demo checkpoint instead of starting over",
    )
    p.add_argument(
        "--run-seconds", type=float, default=1.0, help="how long each simulated agent run takes"
    )
    add("watch", "Attach the screen to a batch a headless worker runs.")
    p = add("cancel-job", "Cancel one Gemini Batch API job as a whole (its items end skipped).")
    p.add_argument("job", type=int, metavar="N", help="the job's number (the jobs view, J)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add(
        "cleanup-jobs",
        "Delete this checkpoint's finished Batch API jobs and their files on the service.",
    )
    p = add(
        "doctor",
        "Check a real API key with the smallest possible calls (says what it costs before spending).",
        (),
    )
    p.add_argument("--model", help="model for the one tiny generate_content call")
    p.add_argument("--agent", help="also start one tiny run of this agent (billed; needs --spend)")
    p.add_argument("--spend", action="store_true", help="allow the calls that bill (a few cents)")
    p.add_argument("--base-url", help="API endpoint; else GOOGLE_GEMINI_BASE_URL")
    return top, parsers


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a whole command line; ``tuibatch ITEMS …`` is the run command."""
    args = list(argv)
    if not args or args[0] not in COMMANDS:
        args.insert(0, RUN)
    top, parsers = build_parser(args[0])
    ns, extra = top.parse_known_args(args)
    if extra:
        parsers[ns.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return ns


def run_options(argv: Sequence[str]) -> RunOptions:
    """The options of a run command line (``ITEMS [flags]``), checked."""
    return RunOptions.from_args(parse([RUN, *argv]))


def _run(ns: argparse.Namespace, probe: Callable[[str], None] | None) -> int:
    from . import runner

    options = RunOptions.from_args(ns)
    if ns.dry_run:
        from .dryrun import dry_run

        return dry_run(options)
    if ns.headless:
        return runner.run(options, probe=probe)
    from .ui import run_app

    return run_app(options)


def _sim(ns: argparse.Namespace) -> int:
    from . import sim

    try:
        cfg = sim.config_from_args(ns)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        asyncio.run(sim.serve(cfg))
    except KeyboardInterrupt:
        pass
    return ExitCode.OK


def _doctor(ns: argparse.Namespace) -> int:
    from .backends.gemini import CredentialsError, resolve_credentials
    from .doctor import DOCTOR_MODEL, run_doctor

    try:
        creds = resolve_credentials(base_url=ns.base_url)
    except CredentialsError as exc:
        raise UsageError(str(exc)) from None
    return asyncio.run(
        run_doctor(
            creds,
            agent=ns.agent,
            spend_ok=ns.spend,
            model=ns.model or DOCTOR_MODEL,
            out=logs.out.info,
        )
    )


def _cancel_job(ns: argparse.Namespace) -> int:
    """A job can only be cancelled whole: every item still in it ends skipped. Confirmed first."""
    if not ns.yes:
        if not sys.stdin.isatty():
            raise UsageError("cancel-job cancels every item still in the job: add --yes to confirm")
        answer = input(f"cancel job {ns.job} and skip every item still in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            logs.out.info("nothing cancelled")
            return ExitCode.OK
    from .batchmode.commands import cancel_job

    logs.out.info("%s", asyncio.run(cancel_job(ns.db, ns.job)))
    return ExitCode.OK


def dispatch(ns: argparse.Namespace, *, probe: Callable[[str], None] | None = None) -> int:
    """Run the parsed command; its exit status."""
    if ns.command == RUN:
        return _run(ns, probe)
    if ns.command == "sim":
        return _sim(ns)
    if ns.command == "demo":
        from .demo import run_demo

        return run_demo(
            ns.dir,
            items=ns.items,
            headless=ns.headless,
            resume=ns.resume,
            run_seconds=ns.run_seconds,
        )
    if ns.command == "watch":
        from .ui import run_watch

        return run_watch(ns.db)
    if ns.command == "doctor":
        return _doctor(ns)
    if ns.command == "cancel-job":
        return _cancel_job(ns)
    if ns.command == "cleanup-jobs":
        from .batchmode.commands import cleanup_jobs

        logs.out.info("%s", asyncio.run(cleanup_jobs(ns.db)))
        return ExitCode.OK
    from . import commands

    if ns.command == "status":
        return asyncio.run(commands.status(ns.db))
    if ns.command == "export":
        return asyncio.run(commands.export(ns.db, ns.output, fmt=ns.format, only=ns.only))
    if ns.command in ("pause", "resume"):
        return asyncio.run(commands.pause(ns.db, ns.command == "pause"))
    if ns.command == "skip":
        return asyncio.run(commands.skip(ns.db, ns.keys))
    if ns.command == "retry":
        return asyncio.run(commands.retry(ns.db, ns.keys, failed=ns.failed))
    raise UsageError(f"unknown command {ns.command!r}")


def main(argv: Sequence[str] | None = None, *, probe: Callable[[str], None] | None = None) -> None:
    """The ``tuibatch`` program. *probe* is handed to the engine (tests' crash points)."""
    logs.configure()
    try:
        code = dispatch(parse(sys.argv[1:] if argv is None else argv), probe=probe)
    except UsageError as exc:
        logs.notice.error("%s", exc)
        code = ExitCode.USAGE
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        code = ExitCode.OK
    raise SystemExit(int(code))
