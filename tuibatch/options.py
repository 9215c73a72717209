"""How a batch runs, as one typed value, and the one place that knows the run command's flags.

The command line parses into :class:`RunOptions` once (:func:`add_run_arguments` declares the
flags, :meth:`RunOptions.from_args` reads them back); the app hands the same value to its worker
process through :meth:`RunOptions.to_argv`, so no flag name is spelled anywhere else. This module
imports nothing heavier than argparse: the UI uses it without pulling in the engine or the SDK.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, cast

from .store import default_db_path

LogLevel = Literal["debug", "info", "progress", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "progress", "warning", "error")
#: ``--quiet`` is this level: progress lines and problems, no per-item lines
QUIET: LogLevel = "progress"
#: ``--concurrency auto`` starts here, and rising latency alone never takes it lower (429/503 can)
AUTO_START = 8


class UsageError(Exception):
    """A mistake in how tuibatch was called or what it was given: one line, exit 2."""


@dataclass(frozen=True)
class RunOptions:
    """Everything a run of one items file needs besides credentials; built once from the flags."""

    items: Path
    db: Path
    agent: str | None = None
    model: str | None = None
    instruction: str | None = None
    concurrency: int = AUTO_START
    #: ``--concurrency auto``, the default: AIMD between `concurrency` and `max_concurrency`
    adaptive: bool = True
    max_concurrency: int = 32
    max_attempts: int = 5
    rpm: float | None = None
    tpm: float | None = None
    budget: float | None = None  # USD
    prices: Path | None = None
    base_url: str | None = None
    #: seconds per API request; None: the backend's defaults (600 s generate_content, 60 s interactions)
    timeout: float | None = None
    poll_interval: float = 1.0
    poll_max: float = 15.0
    retry_initial: float = 1.0
    retry_max: float = 60.0
    rerun_changed: bool = False
    #: cache the SDK's per-call pydantic class builds (see docs/upstream-sdk-serializer-bug.md)
    no_sdk_speedup: bool = False
    progress_every: float = 2.0
    #: None: the default of where it runs (info headless; the app's worker: progress)
    log_level: LogLevel | None = None
    # --- what is sent: read and checked by tuibatch.itemsfile.batch_defaults, not here
    #: a JSON object of GenerateContentConfig fields, the flags below over it
    config: Path | None = None
    #: a JSON Schema: answers must be JSON that matches it
    schema: Path | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_output_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    thinking_budget: int | None = None
    thinking_level: str | None = None
    #: ``CATEGORY=THRESHOLD`` each (HARASSMENT=BLOCK_NONE)
    safety: tuple[str, ...] = ()
    # --- what counts as an answer (the engine's)
    #: more tries for an answer that is not valid JSON or breaks the schema (each one is paid)
    invalid_output_retries: int = 1
    #: keep a truncated answer (MAX_TOKENS, SAFETY ...) as done instead of failing the item
    accept_truncated: bool = False
    #: seconds a run may show a status that is not progress before it fails as stuck
    stuck_after: float = 600.0
    #: seconds any run may be polled before it fails as stuck
    max_run_seconds: float = 10800.0
    # --- Gemini Batch API mode (tuibatch.batchmode)
    #: interactive | batch (model items in Batch API jobs, agent items refused) | auto
    mode: str = "interactive"
    #: caps per Batch API job
    job_items: int = 5000
    job_bytes: int = 200_000_000
    # --- dry run
    #: the service counts the tokens (``--count-tokens``), of a sample of N distinct requests
    count_tokens: bool = False
    count_tokens_sample: int | None = None

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> RunOptions:
        """Check and convert the parsed run flags; a bad value is a :class:`UsageError`."""
        concurrency, adaptive = parse_concurrency(a.concurrency)
        if a.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        if a.max_concurrency < 1:
            raise UsageError("--max-concurrency must be at least 1")
        if a.timeout is not None and a.timeout <= 0:
            raise UsageError("--timeout must be more than 0")
        sample = getattr(a, "count_tokens_sample", None)
        if sample is not None and sample < 1:
            raise UsageError("--count-tokens-sample must be at least 1")
        if sample is not None and not getattr(a, "count_tokens", False):
            raise UsageError("--count-tokens-sample goes with --count-tokens")
        if getattr(a, "count_tokens", False) and not getattr(a, "dry_run", False):
            raise UsageError("--count-tokens goes with --dry-run (a run counts what it uses)")
        for flag in (
            "poll_interval",
            "poll_max",
            "retry_initial",
            "retry_max",
            "progress_every",
            "stuck_after",
            "max_run_seconds",
        ):
            if getattr(a, flag) <= 0:
                raise UsageError(f"--{flag.replace('_', '-')} must be more than 0")
        if a.job_items < 1 or a.job_bytes < 1:
            raise UsageError("--job-items and --job-bytes must be at least 1")
        if a.invalid_output_retries < 0:
            raise UsageError("--invalid-output-retries must be 0 or more")
        if a.max_output_tokens is not None and a.max_output_tokens < 1:
            raise UsageError("--max-output-tokens must be at least 1")
        level = a.log_level
        if a.quiet:
            if level not in (None, QUIET):
                raise UsageError(f"--quiet is --log-level {QUIET}; give one or the other")
            level = QUIET
        return cls(
            items=a.items,
            db=a.db or default_db_path(a.items),
            agent=a.agent,
            model=a.model,
            instruction=a.instruction,
            concurrency=concurrency,
            adaptive=adaptive,
            max_concurrency=a.max_concurrency,
            max_attempts=a.max_attempts,
            rpm=a.rpm,
            tpm=a.tpm,
            budget=a.budget,
            prices=a.prices,
            base_url=a.base_url,
            timeout=a.timeout,
            poll_interval=a.poll_interval,
            poll_max=a.poll_max,
            retry_initial=a.retry_initial,
            retry_max=a.retry_max,
            rerun_changed=a.rerun_changed,
            no_sdk_speedup=a.no_sdk_speedup,
            progress_every=a.progress_every,
            log_level=cast("LogLevel | None", level),
            config=a.config,
            schema=a.schema,
            temperature=a.temperature,
            top_p=a.top_p,
            top_k=a.top_k,
            max_output_tokens=a.max_output_tokens,
            seed=a.seed,
            stop=tuple(a.stop or ()),
            thinking_budget=a.thinking_budget,
            thinking_level=a.thinking_level,
            safety=tuple(a.safety or ()),
            invalid_output_retries=a.invalid_output_retries,
            accept_truncated=a.accept_truncated,
            stuck_after=a.stuck_after,
            max_run_seconds=a.max_run_seconds,
            mode=a.mode,
            job_items=a.job_items,
            job_bytes=a.job_bytes,
            count_tokens=getattr(a, "count_tokens", False),
            count_tokens_sample=sample,
        )

    def to_argv(self, *, headless: bool = False) -> list[str]:
        """The run command's arguments that parse back to exactly these options."""
        items = str(self.items)
        # `--flag=value` and `./-name`: a value that starts with a dash is never taken for a flag
        out = ["./" + items if items.startswith("-") else items, f"--db={self.db}"]
        if headless:
            out.append("--headless")
        defaults = RunOptions(items=self.items, db=self.db)
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            flag = "--" + name.replace("_", "-")
            if name in ("items", "db", "adaptive"):
                continue
            if name == "concurrency":
                out.append(f"{flag}=auto" if self.adaptive else f"{flag}={value}")
            elif value == getattr(defaults, name):
                continue
            elif isinstance(value, tuple):  # a repeatable flag: once per value
                out.extend(f"{flag}={v}" for v in value)
            elif isinstance(value, bool):
                out.append(flag)
            else:
                out.append(f"{flag}={value}")
        return out


def parse_concurrency(value: str) -> tuple[int, bool]:
    """``"8"`` → (8, False); ``"auto"`` → (AUTO_START, True)."""
    if value == "auto":
        return AUTO_START, True
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--concurrency must be a whole number or 'auto', not {value!r}") from None
    if n < 1:
        raise UsageError("--concurrency must be at least 1")
    return n, False


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The run command's flags (``--db`` comes from the shared parent parser)."""
    p.add_argument(
        "items",
        type=Path,
        help='JSONL file: one {"key", "payload"} object per line, or Gemini Batch API lines '
        '{"key", "request"}, or Interactions lines {"key", "input"}',
    )
    p.add_argument("--headless", action="store_true", help="no screen: print progress lines")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="count items and estimate tokens and cost; launch nothing",
    )
    p.add_argument(
        "--count-tokens",
        action="store_true",
        help="with --dry-run: the service counts each distinct model request's tokens "
        "(countTokens: free, launches nothing; agents cannot be counted)",
    )
    p.add_argument(
        "--count-tokens-sample",
        type=int,
        metavar="N",
        help="with --count-tokens: count N distinct requests spread over the file and "
        "extrapolate the rest",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--agent", help="managed agent for items that name none (Interactions API)")
    target.add_argument("--model", help="model for items that name none (default gemini-2.5-flash)")
    p.add_argument("--instruction", help="system instruction for items that give none")
    g = p.add_argument_group("pace and retries")
    g.add_argument(
        "--concurrency",
        default="auto",
        metavar="N|auto",
        help=f"runs in flight at once: a fixed N, or auto (the default): from {AUTO_START} up to "
        "--max-concurrency while every slot is busy and the service keeps up",
    )
    g.add_argument("--max-concurrency", type=int, default=32, help="ceiling for --concurrency auto")
    g.add_argument(
        "--max-attempts", type=int, default=5, help="launch attempts per item (default 5)"
    )
    g.add_argument("--rpm", type=float, help="requests per minute quota, shared by all workers")
    g.add_argument("--tpm", type=float, help="input tokens per minute quota")
    g.add_argument(
        "--poll-interval", type=float, default=1.0, help="first poll delay, s (default 1)"
    )
    g.add_argument(
        "--poll-max", type=float, default=15.0, help="longest poll delay, s (default 15)"
    )
    g.add_argument("--retry-initial", type=float, default=1.0, help="first retry backoff, seconds")
    g.add_argument("--retry-max", type=float, default=60.0, help="longest retry backoff, seconds")
    g = p.add_argument_group("cost and service")
    g.add_argument("--budget", type=float, metavar="USD", help="pause the batch when this is spent")
    g.add_argument("--prices", type=Path, help="JSON price table overriding the built-in one")
    g.add_argument(
        "--base-url", help="API endpoint (proxy, gateway, simulator); else GOOGLE_GEMINI_BASE_URL"
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per API request (default: 600 for model calls, 60 for agent calls)",
    )
    g.add_argument(
        "--no-sdk-speedup",
        action="store_true",
        help="do not cache the SDK's per-call model classes (same as TUIBATCH_SDK_SPEEDUP=0)",
    )
    p.add_argument(
        "--rerun-changed",
        action="store_true",
        help="put keys whose payload changed back to pending",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--progress-every",
        type=float,
        default=2.0,
        help="seconds between progress lines (headless)",
    )
    g.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=None,
        help="headless lines to show: debug, info (default: every event), progress "
        "(progress lines and problems), warning, error",
    )
    g.add_argument("--quiet", action="store_true", help=f"the same as --log-level {QUIET}")
    g = p.add_argument_group("Gemini Batch API mode (half price, results within 24 h)")
    g.add_argument(
        "--mode",
        choices=("interactive", "batch", "auto"),
        default="interactive",
        help="interactive (default); batch: model items go through Batch API jobs, agent "
        "items are refused; auto: model items in jobs, agent items interactively",
    )
    g.add_argument("--job-items", type=int, default=5000, metavar="N", help="items per job")
    g.add_argument(
        "--job-bytes", type=int, default=200_000_000, metavar="BYTES", help="request bytes per job"
    )
    _add_request_arguments(p)


def _add_request_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "what is sent (model calls; an item's own config and a request line's fields win)"
    )
    g.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON object of generation config fields (GenerateContentConfig, REST or SDK "
        "spelling); the flags below override it",
    )
    g.add_argument(
        "--schema",
        type=Path,
        metavar="FILE",
        help="JSON Schema: ask for JSON (application/json) and check every answer against it",
    )
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=float)
    g.add_argument("--max-output-tokens", type=int, metavar="N")
    g.add_argument("--seed", type=int)
    g.add_argument("--stop", action="append", metavar="TEXT", help="a stop sequence (repeatable)")
    g.add_argument("--thinking-budget", type=int, metavar="TOKENS")
    g.add_argument("--thinking-level", metavar="LEVEL", help="minimal, low, medium, high …")
    g.add_argument(
        "--safety",
        action="append",
        metavar="CATEGORY=THRESHOLD",
        help="a safety setting, e.g. HARASSMENT=BLOCK_NONE (repeatable)",
    )
    g = p.add_argument_group("what counts as an answer")
    g.add_argument(
        "--invalid-output-retries",
        type=int,
        default=1,
        metavar="N",
        help="tries again for an answer that is not valid JSON or breaks --schema (default 1; "
        "each one is paid and counted as wasted)",
    )
    g.add_argument(
        "--accept-truncated",
        action="store_true",
        help="keep an answer cut short (MAX_TOKENS, SAFETY …) as done instead of failing it",
    )
    g.add_argument(
        "--stuck-after",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="fail a run that shows a status that is not progress (idle, queued, an unknown "
        "word …) this long (default 600)",
    )
    g.add_argument(
        "--max-run-seconds",
        type=float,
        default=10800.0,
        metavar="SECONDS",
        help="fail any run still going after this long (default 10800: deep-research runs "
        "take tens of minutes)",
    )
