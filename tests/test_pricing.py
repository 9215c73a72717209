"""Honest money: what a run costs from the usage the service reported, and what it might cost
when the service reported none. Rates come from a small table written here, so the arithmetic is
checked against numbers a reader can redo by hand; the built-in table is checked for its sources."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tuibatch.items import InputError
from tuibatch.pricing import DEFAULT_MAX_OUTPUT_TOKENS, Prices, builtin_price_data, load_prices
from tuibatch.sim import AGENTS as SIM_AGENTS
from tuibatch.sim import MODELS as SIM_MODELS
from tuibatch.usage import Usage

DAY = dt.date(2026, 11, 27)
M = 1_000_000

TABLE: dict[str, Any] = {
    "models": {
        "pro": {"input": 2.0, "output": 12.0, "cached": 0.2, "long_context_over": 200000,
                "long_input": 4.0, "long_output": 18.0, "long_cached": 0.4,
                "grounding_per_1k": 14.0, "grounding_unit": "query"},
        "old-pro": {"input": 1.25, "output": 10.0, "grounding_per_1k": 35.0, "grounding_unit": "prompt"},
        "flash": {"input": 0.5, "output": 3.0, "until": "2026-12-31",
                  "then": {"input": 1.0, "output": 6.0}},
    },
    "agents": {
        "researcher": {"model": "pro", "worst_case": {"input_tokens": 900000, "output_tokens": 80000,
                                                      "grounding_calls": 160}},
        "helper": "flash",
    },
}  # fmt: skip


def table() -> Prices:
    return Prices().merged(TABLE, "test table")


def test_cached_input_at_the_cached_rate() -> None:
    p = table()
    cost = p.cost_of("pro", Usage(input_tokens=100_000, cached_tokens=60_000), DAY)
    assert cost == pytest.approx((40_000 * 2.0 + 60_000 * 0.2) / M)
    # no cached rate in the entry: cached tokens at the input rate, never cheaper than billed
    assert p.cost_of("old-pro", Usage(input_tokens=1000, cached_tokens=1000), DAY) == pytest.approx(
        1000 * 1.25 / M
    )


def test_tool_use_prompt_tokens_at_the_input_rate_and_output_with_thinking() -> None:
    p = table()
    u = Usage(input_tokens=1000, output_tokens=500, thought_tokens=2000, tool_use_tokens=3000)
    assert p.cost_of("pro", u, DAY) == pytest.approx(
        (1000 * 2 + 3000 * 2 + 500 * 12 + 2000 * 12) / M
    )


def test_grounding_fee_per_query_or_once_per_prompt() -> None:
    p = table()
    assert p.cost_of("pro", Usage(grounding_calls=3), DAY) == pytest.approx(3 * 14.0 / 1000)
    # Gemini 2.5: one fee per grounded prompt, however many queries it ran
    assert p.cost_of("old-pro", Usage(grounding_calls=3), DAY) == pytest.approx(35.0 / 1000)
    assert p.cost_of("old-pro", Usage(grounding_calls=0), DAY) == 0.0


@pytest.mark.parametrize("prompt,long", [(200_000, False), (200_001, True)])
def test_long_context_tier_per_request_at_the_boundary(prompt: int, long: bool) -> None:
    p = table()
    u = Usage(input_tokens=prompt, output_tokens=1000, cached_tokens=100_000)
    r_in, r_out, r_cached = (4.0, 18.0, 0.4) if long else (2.0, 12.0, 0.2)
    expected = ((prompt - 100_000) * r_in + 100_000 * r_cached + 1000 * r_out) / M
    assert p.cost_of("pro", u, DAY) == pytest.approx(expected)


def test_an_agents_cumulative_input_never_takes_the_long_tier() -> None:
    p = table()
    u = Usage(input_tokens=900_000, output_tokens=10_000)  # many requests, each well under 200k
    assert p.cost_of("researcher", u, DAY) == pytest.approx((900_000 * 2.0 + 10_000 * 12.0) / M)
    assert p.cost_of("pro", u, DAY) == pytest.approx((900_000 * 4.0 + 10_000 * 18.0) / M)


def test_unknown_usage_or_price_is_none_never_zero() -> None:
    p = table()
    assert p.cost_of("pro", Usage.unknown(), DAY) is None
    assert p.cost_of("no-such-model", Usage(input_tokens=10), DAY) is None
    assert p.cost_of(None, Usage(), DAY) is None


def test_cost_keeps_its_old_signature() -> None:
    p = load_prices()
    assert p.cost("gemini-2.5-pro", 1000, 100, 10) == pytest.approx(
        p.cost_of("gemini-2.5-pro", Usage(1000, 100, 10))
    )
    assert p.cost("gemini-2.5-pro", 1000, 100, 10) == pytest.approx((1000 * 1.25 + 110 * 10.0) / M)


def test_a_dated_price_changes_on_its_day() -> None:
    p = table()
    u = Usage(input_tokens=M, output_tokens=M)
    assert p.cost_of("flash", u, dt.date(2026, 12, 31)) == pytest.approx(3.5)
    assert p.cost_of("flash", u, dt.date(2027, 1, 1)) == pytest.approx(7.0)
    assert p.cost_of("helper", u, dt.date(2027, 1, 1)) == pytest.approx(7.0)


def test_worst_case_for_a_run_without_usage() -> None:
    p = table()
    # an agent: its published per-task maximum at its model's standard rates
    assert p.worst_case("researcher", on=DAY) == pytest.approx(
        (900_000 * 2.0 + 80_000 * 12.0) / M + 160 * 14.0 / 1000
    )
    # a model call: the input plus the whole output limit
    assert p.worst_case("old-pro", input_tokens=1000, on=DAY) == pytest.approx(
        (1000 * 1.25 + DEFAULT_MAX_OUTPUT_TOKENS * 10.0) / M
    )
    assert p.worst_case("pro", input_tokens=300_000, on=DAY) == pytest.approx(
        (300_000 * 4.0 + DEFAULT_MAX_OUTPUT_TOKENS * 18.0) / M
    )
    # an agent no source gives a figure for, or an unknown target: no bound to claim
    assert p.worst_case("helper", on=DAY) is None and p.worst_case("nope") is None


# ------------------------------------------------------------------------------ the real table


def test_agents_are_billed_as_the_model_their_docs_name() -> None:
    p = load_prices()
    assert p.agents["deep-research-pro-preview-12-2025"] == "gemini-3-pro-preview"
    assert p.agents["deep-research-preview-04-2026"] == "gemini-3.1-pro-preview"
    assert p.agents["antigravity-preview-05-2026"] == "gemini-3.5-flash"
    assert p.rate_for("deep-research-pro-preview-12-2025") == p.rate_for("gemini-3-pro-preview")
    assert p.rate_for("gemini-3-pro-preview") is not None


def test_every_entry_has_its_own_source_and_date() -> None:
    data = builtin_price_data()
    assert data["source"] and re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["read_on"])
    entries = {**data["models"], **data["agents"]}
    for name, entry in entries.items():
        assert isinstance(entry, dict), name
        assert entry.get("source", "").strip(), f"{name} has no source"
        dt.date.fromisoformat(entry["read_on"])  # a real date
    p = load_prices()
    assert all(r.source and r.read_on for r in p.models.values())


#: models the SDK lists (and the simulator serves) for which no source gave a price on the day the
#: table was read: they show their tokens and "price unknown". Pricing one shrinks this list.
UNPRICED_MODELS = {
    "gemini-3.6-flash", "gemini-3.7-flash", "gemini-4-argon", "gemini-4-carbon", "gemini-4-hydrogen",
    "gemini-flash-latest", "gemini-flash-lite-latest", "gemini-pro-latest",
}  # fmt: skip


def test_every_model_the_simulator_serves_has_a_price() -> None:
    p = load_prices()
    assert {m for m in SIM_MODELS if p.rate_for(m) is None} == UNPRICED_MODELS & SIM_MODELS


def test_every_agent_the_simulator_serves_is_priced_except_those_no_source_names() -> None:
    p = load_prices()
    unpriced = {a for a in SIM_AGENTS if p.rate_for(a) is None}
    # no public source names the model of this one: "price unknown" is the honest answer
    assert unpriced <= {"antigravity-preview-09-2026"}


def test_the_price_table_is_real_json_with_numbers(tmp_path: Path) -> None:
    data = builtin_price_data()
    for name, entry in data["models"].items():
        assert entry["input"] >= 0 and entry["output"] >= 0, name
    json.dumps(data)


def test_an_override_file_in_the_old_format_still_loads(tmp_path: Path) -> None:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"models": {"x": {"input": 1, "output": 2}}, "agents": {"a": "x"}}))
    p = load_prices(f)
    assert p.cost("a", M, 0, 0) == pytest.approx(1.0) and p.rate_for("gemini-2.5-pro") is not None


@pytest.mark.parametrize("bad,words", [
    ({"models": {"x": {"input": "cheap", "output": 1}}}, "'x'"),
    ({"models": {"x": {"input": 1, "output": 1, "grounding_unit": "hour"}}}, "grounding_unit"),
    ({"models": {"x": {"input": 1, "output": 1, "then": {"input": 2}}}}, "until"),
    ({"agents": {"a": {"worst_case": {}}}}, "'a'"),
    ({"agents": {"a": {"model": "x", "worst_case": {"input_tokens": "many"}}}}, "worst_case"),
])  # fmt: skip
def test_a_bad_override_is_one_clear_error(tmp_path: Path, bad: dict[str, Any], words: str) -> None:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(InputError) as err:
        load_prices(f)
    assert str(f) in str(err.value) and words in str(err.value)
