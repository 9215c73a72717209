"""Local Gemini API simulator (``tuibatch sim``): real HTTP, Google's shapes, injectable faults."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

from tuibatch.sim.config import AGENTS, ENFORCEMENTS, MODELS, SimConfig
from tuibatch.sim.demo_plan import demo_fault_plan
from tuibatch.sim.errors import ApiError
from tuibatch.sim.faults import FAULTS_HELP, FaultRule, load_fault_plan, parse_fault_plan
from tuibatch.sim.outputs import content_item_id, output_text_for
from tuibatch.sim.server import Simulator
from tuibatch.sim.thread import SimulatorThread

__all__ = [
    "AGENTS",
    "ENFORCEMENTS",
    "FAULTS_HELP",
    "MODELS",
    "ApiError",
    "FaultRule",
    "SimConfig",
    "Simulator",
    "SimulatorThread",
    "add_arguments",
    "config_from_args",
    "content_item_id",
    "demo_fault_plan",
    "load_fault_plan",
    "output_text_for",
    "parse_fault_plan",
    "serve",
]


async def serve(config: SimConfig, *, print_url: bool = True) -> None:
    """Serve until cancelled, SIGINT or SIGTERM; the URL line lets scripts and tests find the port."""
    sim = Simulator(config)
    url = await sim.start()
    if print_url:
        print(f"tuibatch sim listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await sim.stop()


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tuibatch sim``; the fault plan reference becomes the help's epilog."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "FAULT PLANS (--faults FILE: a JSON list of rules)\n\n" + FAULTS_HELP
    parser.add_argument(
        "--port",
        type=_non_negative(int),
        default=0,
        help="TCP port on 127.0.0.1 (default: any free port)",
    )
    parser.add_argument(
        "--rpm",
        type=_non_negative(int),
        default=None,
        help="requests per minute before 429 RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--tpm",
        type=_non_negative(int),
        default=None,
        help="input tokens per minute before 429 RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--enforcement",
        choices=ENFORCEMENTS,
        default="sliding",
        help="how --rpm/--tpm are enforced: any 60 s window (sliding, default), calendar"
        " minutes (fixed), or a smooth token bucket with a 2 s burst (bucket)",
    )
    parser.add_argument(
        "--polls-free",
        action="store_true",
        help="get/cancel do not count against --rpm (only launches do)",
    )
    parser.add_argument(
        "--invalid-key",
        action="append",
        default=[],
        metavar="KEY",
        help="answer requests with this API key as API_KEY_INVALID (repeatable)",
    )
    parser.add_argument(
        "--fail-rate",
        type=_non_negative(float),
        default=0.0,
        metavar="P",
        help="probability that a create/generate or a batch line fails with 503/500",
    )
    parser.add_argument(
        "--latency",
        type=_non_negative(float),
        default=0.0,
        metavar="MS",
        help="delay added to every response, in milliseconds",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults")
    parser.add_argument(
        "--run-seconds",
        type=_non_negative(float),
        default=0.0,
        metavar="S",
        help="how long a background run takes to complete",
    )
    parser.add_argument(
        "--batch-pending",
        type=_non_negative(float),
        default=SimConfig.batch_pending_seconds,
        metavar="S",
        help="seconds a Batch API job stays PENDING (default %(default)s)",
    )
    parser.add_argument(
        "--batch-running",
        type=_non_negative(float),
        default=SimConfig.batch_running_seconds,
        metavar="S",
        help="seconds a Batch API job then RUNS before it succeeds (default %(default)s)",
    )
    parser.add_argument(
        "--faults", metavar="FILE", default=None, help="JSON fault plan (list of rules)"
    )
    parser.add_argument(
        "--demo-faults",
        action="store_true",
        help="use the built-in demo plan for keys article-0001..article-0200",
    )


def config_from_args(ns: argparse.Namespace) -> SimConfig:
    """Build a SimConfig; a bad fault plan raises ValueError naming file and rule."""
    if getattr(ns, "fail_rate", 0.0) > 1:
        raise ValueError(f"--fail-rate must be within 0..1, got {ns.fail_rate}")
    faults: list[object] = []
    if getattr(ns, "demo_faults", False):
        faults.extend(demo_fault_plan([f"article-{i:04d}" for i in range(1, 201)]))
    if getattr(ns, "faults", None):
        faults.extend(load_fault_plan(ns.faults))
    return SimConfig(
        port=ns.port,
        rpm=ns.rpm or None,
        tpm=ns.tpm or None,
        fail_rate=ns.fail_rate,
        latency_ms=ns.latency,
        seed=ns.seed,
        run_seconds=ns.run_seconds,
        faults=faults,
        enforcement=getattr(ns, "enforcement", "sliding"),
        polls_count=not getattr(ns, "polls_free", False),
        invalid_keys=list(getattr(ns, "invalid_key", None) or []),
        batch_pending_seconds=getattr(ns, "batch_pending", SimConfig.batch_pending_seconds),
        batch_running_seconds=getattr(ns, "batch_running", SimConfig.batch_running_seconds),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m tuibatch.sim``: the simulator without the main CLI."""
    parser = argparse.ArgumentParser(prog="tuibatch sim", description=__doc__)
    add_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns)
    except ValueError as exc:
        print(f"tuibatch sim: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0
