"""`tuibatch doctor` against the local simulator only (a dummy key; never a real endpoint).

It must name the cost before spending, make no billed request without spend_ok, report what
it saw, and stop early on a key that cannot work."""

from __future__ import annotations

import re

from tuibatch.backends.gemini import Credentials
from tuibatch.doctor import known_agents, run_doctor
from tuibatch.sim import SimulatorThread
from tuibatch.states import ExitCode

KEY = "dummy-test-key"


async def doctor(sim: SimulatorThread, **kw: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    kw.setdefault("model", "sim-model")
    rc = await run_doctor(Credentials(api_key=KEY, base_url=sim.url), out=lines.append,
                          poll_s=0.05, agent_wait_s=10, **kw)  # type: ignore[arg-type]  # fmt: skip
    return rc, lines


def billed(sim: SimulatorThread) -> int:
    by_route = sim.stats()["by_route"]
    return int(by_route["create"] + by_route["generate"])


async def test_without_spend_it_bills_nothing_and_says_what_it_would_cost(
    sim: SimulatorThread,
) -> None:
    rc, lines = await doctor(sim, agent="sim-agent", spend_ok=False)
    assert rc == ExitCode.OK
    assert billed(sim) == 0
    text = "\n".join(lines)
    assert (
        "generate_content with sim-model" in text
        and "bills at most $" in text
        and "--spend" in text
    )
    assert "agent run with sim-agent: skipped; one run can bill up to $" in text
    assert re.search(r"list models \(free\): \d+ on the first page; sim-model: listed", text)
    # the simulator has no agent lookups: said plainly, not a failure
    assert "agent lookups (free): not available" in text
    assert KEY not in text


async def test_an_endpoint_without_a_models_list_is_reported_not_failed(
    sim: SimulatorThread,
) -> None:
    lines: list[str] = []
    creds = Credentials(api_key=KEY, base_url=sim.url, api_version="v1alpha")  # 404 for every route
    rc = await run_doctor(creds, agent=None, spend_ok=False, out=lines.append, model="sim-model")
    assert rc == ExitCode.OK
    assert any(line.startswith("list models (free): not available (404") for line in lines)
    assert billed(sim) == 0


async def test_with_spend_it_makes_one_tiny_call_of_each_kind(sim: SimulatorThread) -> None:
    rc, lines = await doctor(sim, agent="sim-agent", spend_ok=True)
    assert rc == ExitCode.OK, lines
    stats = sim.stats()
    assert stats["by_route"]["generate"] == 1 and stats["by_route"]["create"] == 1
    assert stats["by_route"]["cancel"] == 0
    text = "\n".join(lines)
    # the cost is named before the call is made
    assert text.index("bills at most") < text.index("answer ")
    assert text.index("can bill up to") < text.index("launched ")
    assert "status 'completed' parsed (completed), usage reported" in text
    assert text.rstrip().endswith("result: every check that ran passed")


async def test_no_agent_run_unless_one_is_named(sim: SimulatorThread) -> None:
    rc, _ = await doctor(sim, agent=None, spend_ok=True)
    assert rc == ExitCode.OK
    assert sim.stats()["by_route"]["create"] == 0 and sim.stats()["by_route"]["generate"] == 1


async def test_a_bad_key_stops_before_the_agent_run(sim: SimulatorThread) -> None:
    sim.set_faults([{"any": True, "fault": "bad_key", "times": None}])
    rc, lines = await doctor(sim, agent="sim-agent", spend_ok=True)
    assert rc == ExitCode.PAUSED
    assert sim.stats()["by_route"]["create"] == 0
    assert any("bad API key" in line for line in lines)


async def test_answers_that_do_not_parse_into_a_full_result_fail_the_check(
    sim: SimulatorThread,
) -> None:
    sim.set_faults([{"any": True, "fault": "usage", "usage": "none", "times": None}])
    rc, lines = await doctor(sim, agent="sim-agent", spend_ok=True)
    assert rc == ExitCode.FAILED
    assert sum("NO usage reported" in line for line in lines) == 2


async def test_a_free_tier_without_quota_is_named(sim: SimulatorThread) -> None:
    sim.set_faults([{"any": True, "fault": "free_tier", "times": None}])
    rc, lines = await doctor(sim, agent=None, spend_ok=True)
    assert rc == ExitCode.PAUSED
    assert any(line.startswith("tier: free tier") for line in lines)


def test_the_agents_it_looks_up_are_the_sdks() -> None:
    agents = known_agents()
    assert "deep-research-pro-preview-12-2025" in agents and len(agents) == len(set(agents)) >= 3
