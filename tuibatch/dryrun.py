"""``--dry-run``: what a batch would send and roughly cost, per model, without sending anything.

Tokens are counted locally at ≈4 characters a token. google-genai ships a local tokenizer
(``google.genai.local_tokenizer``), but it downloads its SentencePiece model from the network
on first use and needs the ``sentencepiece`` package, so it is not used. With
``--count-tokens`` the service counts instead: the free ``models.count_tokens`` call, made
through the SDK with the very contents each distinct model request would send (see
:mod:`tuibatch.dryrun_tokens`; ``--count-tokens-sample N`` counts N of them and extrapolates).
Agents cannot be counted (the Interactions API has no token count): theirs stay estimates.
Inline data and file parts are not counted by the local estimate (their size in tokens depends
on the media).

The output of a run is unknown before it runs: the cost is bracketed between 0.5× and 4× the
input's tokens of output, at most the item's ``max_output_tokens``. An agent's run reads far more
than its input: its high end is the price table's worst case for one run when it gives one.
With ``--mode batch`` (or ``auto``) model items are priced at the Batch API's rate, half the
interactive one (``pricing.BATCH_DISCOUNT``), as a finished batch job is priced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .items import InputError, Item, read_file
from .pricing import BATCH_DISCOUNT, Prices, estimate_tokens
from .request_spec import RequestSpec
from .states import ExitCode

if TYPE_CHECKING:
    from .options import RunOptions

#: output tokens per input token at the low and the high end of the bracket
LOW_OUT, HIGH_OUT = 0.5, 4.0


@dataclass
class Target:
    """One model or agent's share of the batch."""

    name: str
    agent: bool
    items: int = 0
    tokens: int = 0
    low: float = 0.0
    high: float = 0.0
    priced: bool = True
    worst_case: bool = False
    #: items whose tokens the service counted (the rest: estimated, or extrapolated)
    counted: int = 0
    at_batch_rate: bool = False


@dataclass
class Request:
    """One distinct request (same fingerprint) not finished yet, and how many items send it."""

    target: str
    agent: bool
    estimate: int
    cap: int | None
    #: the request's canonical JSON in pieces (lines share their config pieces)
    pieces: tuple[str, ...]
    items: int = 0
    #: input tokens the service counted (``--count-tokens``); None: not counted
    counted: int | None = None

    @property
    def request_json(self) -> str:
        return "".join(self.pieces)


@dataclass
class Counting:
    """What ``--count-tokens`` did: distinct model requests counted out of how many."""

    counted: int
    distinct: int
    tools_not_counted: bool = False


@dataclass
class DryRun:
    items: int = 0
    finished: int = 0
    structured: int = 0
    requests: dict[str, Request] = field(default_factory=dict)
    prices: Prices = field(default_factory=Prices)
    #: model items priced at the Batch API's rate (``--mode batch`` / ``auto``)
    batch_rate: bool = False
    #: agent items a ``--mode batch`` run refuses
    refused_agents: int = 0
    counting: Counting | None = None

    @property
    def todo(self) -> int:
        return self.items - self.finished

    @property
    def targets(self) -> dict[str, Target]:
        return self._targets()

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.targets.values())

    def model_requests(self) -> list[Request]:
        """The distinct model requests, in file order: what ``--count-tokens`` can count."""
        return [r for r in self.requests.values() if not r.agent]

    def _targets(self) -> dict[str, Target]:
        # a sample's counts scale the rest of its target's estimates (per target: one model's
        # tokenizer, one batch's kind of text)
        sums: dict[str, list[int]] = {}
        for r in self.requests.values():
            if r.counted is not None:
                acc = sums.setdefault(r.target, [0, 0])
                acc[0] += r.counted * r.items
                acc[1] += r.estimate * r.items
        ratio = {name: c / e for name, (c, e) in sums.items() if e > 0}
        out: dict[str, Target] = {}
        for r in self.requests.values():
            t = out.get(r.target)
            if t is None:
                t = out[r.target] = Target(r.target, agent=r.agent)
            if r.counted is not None:
                n = r.counted
                t.counted += r.items
            else:
                n = round(r.estimate * ratio.get(r.target, 1.0))
            t.items += r.items
            t.tokens += n * r.items
            rate = self.prices.rate_for(r.target)
            if rate is None:
                t.priced = False
                continue
            low_out, high_out = n * LOW_OUT, n * HIGH_OUT
            if r.cap is not None:
                low_out, high_out = min(low_out, r.cap), min(high_out, r.cap)
            low = (n * rate.input + low_out * rate.output) / 1e6
            high = (n * rate.input + high_out * max(rate.output, rate.thinking)) / 1e6
            if t.agent:
                worst = self.prices.worst_case(r.target)
                if worst is not None and worst > high:
                    high, t.worst_case = worst, True
            elif self.batch_rate:
                low, high, t.at_batch_rate = low * BATCH_DISCOUNT, high * BATCH_DISCOUNT, True
            t.low += low * r.items
            t.high += high * r.items
        return out

    def _how(self, targets: dict[str, Target]) -> str:
        if self.counting is None:
            return "local estimate, ≈4 characters a token; inline data and files not counted"
        c = self.counting
        if c.counted == c.distinct:
            how = f"counted by the service (countTokens) for all {c.distinct} distinct requests"
        else:
            how = (
                f"countTokens on a sample of {c.counted} of {c.distinct} distinct requests, "
                "the rest extrapolated from it"
            )
        if any(t.agent for t in targets.values()):
            how += "; agents cannot be counted (no token count for the Interactions API): "
            how += "their items are a local estimate, ≈4 characters a token"
        if c.tools_not_counted:
            how += "; tool declarations not counted (the Gemini API counts contents only)"
        return how

    def lines(self) -> list[str]:
        """What the dry run prints."""
        targets = self.targets
        already = (
            f" ({self.finished} already finished in the checkpoint, not counted)"
            if self.finished
            else ""
        )
        about = "" if self.counting is not None else "about "
        out = [
            f"{self.todo} items to run{already}, {about}"
            f"{sum(t.tokens for t in targets.values()):,} input tokens ({self._how(targets)})"
        ]
        unknown = []
        low = high = 0.0
        for t in sorted(targets.values(), key=lambda t: t.name):
            kind = "agent " if t.agent else ""
            if not t.priced:
                unknown.append(t.name)
                cost = "price unknown"
            else:
                low, high = low + t.low, high + t.high
                cost = f"${t.low:.4f} – ${t.high:.4f}"
                if t.at_batch_rate:
                    cost += " at the batch rate"
                if t.worst_case:
                    cost += " (high: each run at its worst case in the price table)"
            tilde = "" if self.counting is not None and t.counted == t.items else "~"
            out.append(
                f"  {kind}{t.name}: {t.items} items, {tilde}{t.tokens:,} input tokens, {cost}"
            )
        out.append(
            f"estimated cost ${low:.4f} – ${high:.4f} (an estimate: output length is unknown "
            "until runs finish)"
        )
        if any(t.at_batch_rate for t in targets.values()):
            out.append(
                "--mode batch: model items are priced at the Batch API rate, half the "
                "interactive price"
            )
        if self.refused_agents:
            out.append(
                f"--mode batch refuses agent items: {self.refused_agents} here (--mode auto runs "
                "them interactively)"
            )
        if self.structured:
            out.append(
                f"{self.structured} item(s) ask for JSON: answers are checked (--schema or the "
                "request's own)"
            )
        if unknown:
            out.append(f"price unknown for: {', '.join(unknown)}")
        return out


def _system_text(value: Any) -> str:
    """The text of a system instruction in any of its shapes (str, Content, parts)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return "\n".join(_system_text(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return str(value["text"])
        return _system_text(value.get("parts"))
    return ""


class _Instructions:
    """The system instruction's token count per config (lines share a handful of configs)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, int]] = {}

    def tokens(self, spec: RequestSpec) -> int:
        if spec.config is not None:
            hit = self._seen.get(id(spec.config))
            if hit is None or hit[0] is not spec.config:
                text = _system_text(spec.config.system_instruction)
                hit = (spec.config, estimate_tokens(text) if text else 0)
                self._seen[id(spec.config)] = hit
            return hit[1]
        if spec.agent:
            text = _system_text(spec.wire().get("system_instruction"))
            return estimate_tokens(text) if text else 0
        return 0


def estimate(
    pairs: Iterable[tuple[Item, RequestSpec]],
    prices: Prices,
    finished: set[str],
    *,
    mode: str = "interactive",
) -> DryRun:
    """Check every line (the iterator raises InputError at the first bad one) and gather the
    distinct requests of the items not finished yet, to be priced (:attr:`DryRun.targets`)."""
    report = DryRun(prices=prices, batch_rate=mode in ("batch", "auto"))
    instructions = _Instructions()
    requests = report.requests
    for item, spec in pairs:
        report.items += 1
        if item.key in finished:
            report.finished += 1
            continue
        report.structured += spec.expects_json
        r = requests.get(spec.fingerprint)
        if r is None:
            r = requests[spec.fingerprint] = Request(
                spec.target,
                spec.agent is not None,
                estimate_tokens(spec.input_text) + instructions.tokens(spec),
                spec.config.max_output_tokens if spec.config is not None else None,
                spec.pieces,
            )
        r.items += 1
        if mode == "batch" and r.agent:
            report.refused_agents += 1
    return report


def dry_run(options: RunOptions) -> ExitCode:
    """Check every line and the batch's config, count the items left and bracket their cost
    per model (the service counting the tokens with ``--count-tokens``); launch nothing,
    write nothing."""
    from . import logs
    from .itemsfile import iter_specs
    from .options import UsageError
    from .pricing import load_prices
    from .runner import read_batch
    from .store import CheckpointError

    defaults = read_batch(options)
    try:
        prices = load_prices(options.prices)
        finished = asyncio.run(_finished_keys(options))
        data = read_file(options.items)
        report = estimate(
            iter_specs(options.items, data, defaults), prices, finished, mode=options.mode
        )
        del data
        if not report.items:
            raise InputError(f"{options.items}: no items (the file is empty)")
    except (InputError, CheckpointError) as exc:
        raise UsageError(str(exc)) from None
    if options.count_tokens:
        from .dryrun_tokens import CountError, count_report

        try:
            asyncio.run(count_report(report, sample=options.count_tokens_sample))
        except CountError as exc:
            logs.notice.error("%s", exc)
            return ExitCode.FAILED
    for line in report.lines():
        logs.out.info("%s", line)
    return ExitCode.OK


async def _finished_keys(options: RunOptions) -> set[str]:
    """Keys already done or skipped, read without writing (a dry run changes nothing)."""
    from .store import Store

    if not options.db.exists():
        return set()
    store = await Store.open(options.db, readonly=True)
    try:
        return await store.finished_keys()
    finally:
        await store.close()
