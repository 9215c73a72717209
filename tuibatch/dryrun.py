"""``--dry-run``: what a batch would send and roughly cost, per model, without sending anything.

Tokens are counted locally at ≈4 characters a token. google-genai ships a local tokenizer
(``google.genai.local_tokenizer``), but it downloads its SentencePiece model from the network
on first use and needs the ``sentencepiece`` package, and ``count_tokens`` is an API call: a
dry run makes neither, so the figures are labelled as estimates. Inline data and file parts are
not counted (their size in tokens depends on the media).

The output of a run is unknown before it runs: the cost is bracketed between 0.5× and 4× the
input's tokens of output, at most the item's ``max_output_tokens``. An agent's run reads far more
than its input: its high end is the price table's worst case for one run when it gives one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .items import Item
from .pricing import Prices, estimate_tokens
from .request_spec import RequestSpec

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


@dataclass
class DryRun:
    items: int = 0
    finished: int = 0
    structured: int = 0
    targets: dict[str, Target] = field(default_factory=dict)

    @property
    def todo(self) -> int:
        return self.items - self.finished

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.targets.values())

    def lines(self) -> list[str]:
        """What the dry run prints."""
        already = (
            f" ({self.finished} already finished in the checkpoint, not counted)"
            if self.finished
            else ""
        )
        out = [
            f"{self.todo} items to run{already}, about {self.tokens:,} input tokens (local "
            "estimate, ≈4 characters a token; inline data and files not counted)"
        ]
        unknown = []
        low = high = 0.0
        for t in sorted(self.targets.values(), key=lambda t: t.name):
            kind = "agent " if t.agent else ""
            if not t.priced:
                unknown.append(t.name)
                cost = "price unknown"
            else:
                low, high = low + t.low, high + t.high
                cost = f"${t.low:.4f} – ${t.high:.4f}"
                if t.worst_case:
                    cost += " (high: each run at its worst case in the price table)"
            out.append(f"  {kind}{t.name}: {t.items} items, ~{t.tokens:,} input tokens, {cost}")
        out.append(
            f"estimated cost ${low:.4f} – ${high:.4f} (an estimate: output length is unknown "
            "until runs finish)"
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
    pairs: Iterable[tuple[Item, RequestSpec]], prices: Prices, finished: set[str]
) -> DryRun:
    """Check every line (the iterator raises InputError at the first bad one) and bracket the
    cost of the items not finished yet."""
    report = DryRun()
    instructions = _Instructions()
    for item, spec in pairs:
        report.items += 1
        if item.key in finished:
            report.finished += 1
            continue
        name = spec.target
        t = report.targets.get(name)
        if t is None:
            t = report.targets[name] = Target(name, agent=spec.agent is not None)
        n = estimate_tokens(spec.input_text) + instructions.tokens(spec)
        t.items += 1
        t.tokens += n
        report.structured += spec.expects_json
        rate = prices.rate_for(name)
        if rate is None:
            t.priced = False
            continue
        cap = spec.config.max_output_tokens if spec.config is not None else None
        low_out, high_out = n * LOW_OUT, n * HIGH_OUT
        if cap is not None:
            low_out, high_out = min(low_out, cap), min(high_out, cap)
        t.low += (n * rate.input + low_out * rate.output) / 1e6
        high = (n * rate.input + high_out * max(rate.output, rate.thinking)) / 1e6
        if t.agent:
            worst = prices.worst_case(name)
            if worst is not None and worst > high:
                high, t.worst_case = worst, True
        t.high += high
    return report
