"""Prices per model, and agents billed at their underlying model's rates.

The table is data (``data/prices.json``: every entry with its own ``source`` and ``read_on``)
because prices change more often than code; ``--prices FILE`` overrides or extends it.

How a cost is computed (:meth:`Prices.cost_of`), as Google bills the Gemini API:

* input at the input rate, except the cached part (``Usage.cached_tokens``) at the context-cache
  rate (an entry without a cached rate charges cached tokens at the input rate: an overestimate,
  never an underestimate); tool-use prompt tokens at the input rate; output and thinking at the
  output rate;
* the long-context tier (``long_context_over``, e.g. prompts over 200k tokens) is judged **per
  request**, as Google bills it: a direct model call is one request, so its prompt decides. An
  agent's usage is the total over the many requests of its run, and how it splits per request is
  not reported: agents are priced at the standard tier (an approximation: it undercounts only an
  agent step whose own prompt exceeds the threshold);
* grounding fees per call the response reports (``grounding_per_1k``, per 1,000 calls; the unit
  is a search query for Gemini 3 models and a grounded prompt for Gemini 2.5, where one request
  pays at most one fee). Free monthly/daily grounding allowances are not subtracted;
* no usage reported → the cost is unknown (None), never $0.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .items import InputError
from .usage import Usage

#: what a model call may write at most when its entry says nothing (Gemini 2.5 / 3.x models)
DEFAULT_MAX_OUTPUT_TOKENS = 65_536

#: the Batch API's price as a share of the interactive one: "Batch Mode ... at 50% of the
#: standard cost" (https://ai.google.dev/gemini-api/docs/batch-mode, read 2026-11-27)
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Rate:
    """USD per 1M tokens (``grounding_per_1k``: USD per 1,000 grounding calls)."""

    input: float
    output: float
    thinking: float
    long_context_over: int | None = None
    long_input: float | None = None
    long_output: float | None = None
    cached: float | None = None
    long_cached: float | None = None
    grounding_per_1k: float | None = None
    grounding_unit: str = "query"  # "query" (every call) | "prompt" (at most one per request)
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    source: str = ""
    read_on: str = ""
    #: a list price valid until this day (inclusive), replaced by ``then`` afterwards
    until: dt.date | None = None
    then: Rate | None = None

    def on(self, day: dt.date) -> Rate:
        if self.until is not None and self.then is not None and day > self.until:
            return self.then.on(day)
        return self


@dataclass(frozen=True)
class AgentPrice:
    """An agent: the model its docs say it runs on, and what one run costs at most when the
    service reports no usage (``worst_case``; None when no source gives a figure)."""

    model: str
    worst_case: Usage | None = None
    source: str = ""
    read_on: str = ""


@dataclass
class Prices:
    models: dict[str, Rate] = field(default_factory=dict)
    #: agent → the model it is billed as (kept as plain names for callers of the old API)
    agents: dict[str, str] = field(default_factory=dict)
    agent_info: dict[str, AgentPrice] = field(default_factory=dict)
    source: str = ""
    read_on: str = ""

    def rate_for(self, target: str | None, on: dt.date | None = None) -> Rate | None:
        if not target:
            return None
        model = self.agents.get(target, target)
        rate = self.models.get(model) or self.models.get(model.removeprefix("models/"))
        return rate.on(on or _today()) if rate is not None else None

    def is_agent(self, target: str | None) -> bool:
        return bool(target) and target in self.agents

    def cost_of(self, target: str | None, usage: Usage, on: dt.date | None = None) -> float | None:
        """USD for one run, or None when the price or the usage is unknown (never a silent $0)."""
        rate = self.rate_for(target, on)
        if rate is None or not usage.known:
            return None
        # per request, as billed; an agent's totals span many requests (see the module docstring)
        long = (
            rate.long_context_over is not None
            and not self.is_agent(target)
            and usage.input_tokens > rate.long_context_over
        )
        r_in, r_out, r_think = rate.input, rate.output, rate.thinking
        r_cached = rate.cached if rate.cached is not None else r_in
        if long:
            r_in = rate.long_input if rate.long_input is not None else r_in
            r_out = r_think = rate.long_output if rate.long_output is not None else r_out
            r_cached = rate.long_cached if rate.long_cached is not None else r_in
        cached = min(max(usage.cached_tokens, 0), max(usage.input_tokens, 0))
        fresh = max(usage.input_tokens, 0) - cached
        tokens = (
            fresh * r_in
            + cached * r_cached
            + max(usage.tool_use_tokens, 0) * r_in
            + max(usage.output_tokens, 0) * r_out
            + max(usage.thought_tokens, 0) * r_think
        ) / 1_000_000
        calls = max(usage.grounding_calls, 0)
        if rate.grounding_unit == "prompt" and not self.is_agent(target):
            calls = min(calls, 1)
        fees = calls * (rate.grounding_per_1k or 0.0) / 1000
        return tokens + fees

    def cost(
        self, target: str | None, tokens_in: int, tokens_out: int, tokens_thought: int
    ) -> float | None:
        """USD for plain token counts (callers of the old API; see :meth:`cost_of`)."""
        return self.cost_of(target, Usage(tokens_in, tokens_out, tokens_thought))

    def worst_case(
        self, target: str | None, input_tokens: int | None = None, on: dt.date | None = None
    ) -> float | None:
        """What the budget counts for a finished run whose usage the service did not report.

        * An agent: its ``worst_case`` profile from the price table, priced at its model's
          rates (for the deep-research agents: the top of the per-task figures published for
          them, 900k input tokens none cached, 80k output tokens, 160 search queries). None when
          no source gives a figure for the agent: the caller must say the cost is unbounded.
        * A model call: its input (the caller's estimate, else 0) plus the model's whole output
          limit (``max_output_tokens``, thinking included) at the output rate, at the
          long-context tier when the input is over it: a request cannot cost more.
        """
        rate = self.rate_for(target, on)
        if rate is None:
            return None
        if self.is_agent(target):
            info = self.agent_info.get(target or "")
            if info is None or info.worst_case is None:
                return None
            return self.cost_of(target, info.worst_case, on)
        usage = Usage(input_tokens=input_tokens or 0, output_tokens=rate.max_output_tokens)
        return self.cost_of(target, usage, on)

    def merged(self, other: dict[str, Any], origin: str) -> Prices:
        out = Prices(dict(self.models), dict(self.agents), dict(self.agent_info), self.source,
                     self.read_on)  # fmt: skip
        _fill(out, other, origin)
        return out


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _num(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    return None if value is None else float(value)


def _rate(spec: Any, origin: str, name: str, base: Rate | None = None) -> Rate:
    if not isinstance(spec, dict):
        raise InputError(f"{origin}: model {name!r} must be an object with prices")
    try:
        # a "then" block: a price it does not name stays as before
        inp = float(spec["input"] if base is None or "input" in spec else base.input)
        out = float(spec["output"] if base is None or "output" in spec else base.output)
        until = spec.get("until")
        rate = Rate(
            input=inp,
            output=out,
            thinking=float(spec.get("thinking", out)),
            long_context_over=None if spec.get("long_context_over") is None
            else int(spec["long_context_over"]),
            long_input=_num(spec, "long_input"),
            long_output=_num(spec, "long_output"),
            cached=_num(spec, "cached"),
            long_cached=_num(spec, "long_cached"),
            grounding_per_1k=_num(spec, "grounding_per_1k"),
            grounding_unit=str(spec.get("grounding_unit", "query")),
            max_output_tokens=int(spec.get("max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS)),
            source=str(spec.get("source", "")),
            read_on=str(spec.get("read_on", "")),
            until=dt.date.fromisoformat(until) if until else None,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f'{origin}: model {name!r} needs numeric "input" and "output" prices'
            ' (and an ISO "until" date, if any)'
        ) from None
    if rate.grounding_unit not in ("query", "prompt"):
        raise InputError(f'{origin}: model {name!r}: "grounding_unit" must be query or prompt')
    if "then" in spec:
        if rate.until is None:
            raise InputError(f'{origin}: model {name!r}: "then" needs an "until" date')
        then = _rate(spec["then"], origin, name, base=rate)
        rate = replace(rate, then=replace(then, source=then.source or rate.source,
                                          read_on=then.read_on or rate.read_on))  # fmt: skip
    return rate


def _agent(spec: Any, origin: str, name: str) -> AgentPrice:
    if isinstance(spec, str):
        return AgentPrice(model=spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
        raise InputError(f"{origin}: agent {name!r} must map to a model name")
    worst = spec.get("worst_case")
    usage = None
    if worst is not None:
        try:
            usage = Usage(
                input_tokens=int(worst.get("input_tokens", 0)),
                output_tokens=int(worst.get("output_tokens", 0)),
                thought_tokens=int(worst.get("thought_tokens", 0)),
                grounding_calls=int(worst.get("grounding_calls", 0)),
            )
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"{origin}: agent {name!r}: worst_case needs whole numbers") from None
    return AgentPrice(model=spec["model"], worst_case=usage, source=str(spec.get("source", "")),
                      read_on=str(spec.get("read_on", "")))  # fmt: skip


def _fill(prices: Prices, data: Any, origin: str) -> None:
    if not isinstance(data, dict):
        raise InputError(f"{origin}: price table must be a JSON object")
    for name, spec in (data.get("models") or {}).items():
        prices.models[name] = _rate(spec, origin, name)
    for agent, spec in (data.get("agents") or {}).items():
        info = _agent(spec, origin, agent)
        prices.agents[agent] = info.model
        prices.agent_info[agent] = info
    prices.source = data.get("source", prices.source)
    prices.read_on = data.get("read_on", prices.read_on)


def builtin_price_data() -> dict[str, Any]:
    """The built-in table as stored (tests check every entry's source and date)."""
    text = (Path(__file__).parent / "data" / "prices.json").read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def load_prices(override: Path | None = None) -> Prices:
    prices = Prices()
    _fill(prices, builtin_price_data(), "built-in prices")
    if override is not None:
        try:
            data = json.loads(Path(override).read_text("utf-8"))
        except FileNotFoundError:
            raise InputError(f"{override}: no such price file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{override}: cannot read price file: {exc}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{override}:{exc.lineno}: malformed JSON: {exc.msg}") from None
        prices = prices.merged(data, str(override))
    return prices


def estimate_tokens(text: str) -> int:
    """Rough local estimate (≈4 characters a token); labelled as an estimate wherever shown."""
    return len(text) // 4 + 1
