"""Prices per model, and agents billed at their underlying model's rates.

The table is data (``data/prices.json``, with its source and date) because prices
change more often than code; ``--prices FILE`` overrides or extends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .items import InputError


@dataclass(frozen=True)
class Rate:
    input: float
    output: float
    thinking: float
    long_context_over: int | None = None
    long_input: float | None = None
    long_output: float | None = None


@dataclass
class Prices:
    models: dict[str, Rate] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)
    source: str = ""
    read_on: str = ""

    def rate_for(self, target: str | None) -> Rate | None:
        if not target:
            return None
        model = self.agents.get(target, target)
        return self.models.get(model) or self.models.get(model.removeprefix("models/"))

    def cost(self, target: str | None, tokens_in: int, tokens_out: int, tokens_thought: int) -> float | None:
        """USD for one call, or None when the price is unknown (never a silent $0)."""
        rate = self.rate_for(target)
        if rate is None:
            return None
        r_in, r_out, r_think = rate.input, rate.output, rate.thinking
        if rate.long_context_over is not None and tokens_in > rate.long_context_over:
            r_in = rate.long_input or r_in
            r_out = r_think = rate.long_output or r_out
        return (tokens_in * r_in + tokens_out * r_out + tokens_thought * r_think) / 1_000_000

    def merged(self, other: dict[str, Any], origin: str) -> Prices:
        out = Prices(dict(self.models), dict(self.agents), self.source, self.read_on)
        _fill(out, other, origin)
        return out


def _fill(prices: Prices, data: Any, origin: str) -> None:
    if not isinstance(data, dict):
        raise InputError(f"{origin}: price table must be a JSON object")
    for name, spec in (data.get("models") or {}).items():
        try:
            prices.models[name] = Rate(
                input=float(spec["input"]), output=float(spec["output"]),
                thinking=float(spec.get("thinking", spec["output"])),
                long_context_over=spec.get("long_context_over"),
                long_input=spec.get("long_input"), long_output=spec.get("long_output"))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{origin}: model {name!r} needs numeric \"input\" and \"output\" prices") from None
    for agent, model in (data.get("agents") or {}).items():
        if not isinstance(model, str):
            raise InputError(f"{origin}: agent {agent!r} must map to a model name")
        prices.agents[agent] = model
    prices.source = data.get("source", prices.source)
    prices.read_on = data.get("read_on", prices.read_on)


def load_prices(override: Path | None = None) -> Prices:
    prices = Prices()
    text = (Path(__file__).parent / "data" / "prices.json").read_text("utf-8")
    _fill(prices, json.loads(text), "built-in prices")
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
