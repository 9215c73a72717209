"""``tuibatch doctor``: the smallest real calls that show what a key can reach.

Given a real key it lists models (free), looks up the agents the SDK knows (free), makes one
tiny capped ``generate_content`` call and, only when asked, one tiny agent run, and reports what
it saw: which endpoints and agents the key reaches, its tier as far as the API says, and whether
every response parsed into tuibatch's types. It says what a call will cost *before* making it,
and makes no billed call without ``spend_ok``.

Never run it in CI: tests point it at the local simulator with a dummy key.
Exit status: 0 every check that ran passed; 1 a check failed; 3 the key itself cannot be used
(bad key, no permission, billing or location, no quota).
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Callable

from .backends.base import LaunchSpec, RunResult
from .backends.gemini import Credentials, GeminiBackend
from .policy import Cause, Failure, Kind
from .pricing import Prices, estimate_tokens, load_prices
from .safe_text import visible
from .states import ExitCode
from .usage import Usage

#: the cheapest text model the price table knows; its thinking is off by default
DOCTOR_MODEL = "gemini-2.5-flash-lite"
PROBE_TEXT = "Reply with the single word: ok"
PROBE_MAX_OUTPUT = 16
AGENT_PROBE_TEXT = "Reply with the single word ok. This is a connectivity check: do no research."
#: failures that say the key (not one request) is the problem
_KEY_CAUSES = frozenset({Cause.AUTH, Cause.PERMISSION, Cause.BILLING_OR_LOCATION, Cause.NO_QUOTA})


def known_agents() -> list[str]:
    """The agent ids the installed SDK lists (``AgentOption``)."""
    from google.genai import interactions

    return [a for arg in typing.get_args(interactions.AgentOption) for a in typing.get_args(arg)]


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}" if value < 0.01 else f"${value:.2f}"


class _Report:
    def __init__(self, out: Callable[[str], object]) -> None:
        self.out = out
        self.failed = False
        self.key_unusable = False
        self.free_tier = False

    def line(self, text: str) -> None:
        self.out(text)

    def saw(self, what: str, f: Failure) -> str:
        """Note a failure; the words that describe it."""
        if f.cause in _KEY_CAUSES or (f.kind is Kind.BATCH and f.cause is Cause.AUTH):
            self.key_unusable = True
        if f.cause is Cause.NO_QUOTA or any("freetier" in q.lower() for q in f.quota_ids):
            self.free_tier = True
        return f"{what}: {f.headline} ({visible(f.short())[:200]})"


def _parsed(r: RunResult) -> str:
    text = f"status {r.status!r} parsed ({r.run_status or 'a status tuibatch does not know'})"
    if r.terminal:
        text += ", usage reported" if r.usage.known else ", NO usage reported (cost unknown)"
    return text + (f", stopped: {r.stop_reason}" if r.stop_reason else "")


async def run_doctor(
    creds: Credentials,
    *,
    agent: str | None,
    spend_ok: bool,
    out: Callable[[str], object] = print,
    model: str = DOCTOR_MODEL,
    prices: Prices | None = None,
    agent_wait_s: float = 900.0,
    poll_s: float = 10.0,
) -> int:
    prices = prices or load_prices()
    rep = _Report(out)
    backend = GeminiBackend(creds, timeout_s=None)
    try:
        where = creds.base_url or (
            "Vertex AI" if creds.vertex else "https://generativelanguage.googleapis.com"
        )
        rep.line(
            f"endpoint: {where}; API version: {creds.api_version or 'the SDK default'}; "
            f"key: {'set (not shown)' if creds.api_key else 'none'}"
        )
        await _list_models(backend, rep, model)
        if not rep.key_unusable:
            await _look_up_agents(backend, rep)
        if not rep.key_unusable:
            await _generate(backend, rep, prices, model, spend_ok)
        if agent and not rep.key_unusable:
            await _agent_run(backend, rep, prices, agent, spend_ok, agent_wait_s, poll_s)
        tier = (
            "free tier (a quota named -FreeTier or limit 0)"
            if rep.free_tier
            else ("not reported by the API (it names -FreeTier quotas only when one is exceeded)")
        )
        rep.line(f"tier: {tier}")
    finally:
        await backend.close()
    if rep.key_unusable:
        rep.line("result: this key cannot run a batch as it is")
        return int(ExitCode.PAUSED)
    rep.line("result: " + ("some checks failed" if rep.failed else "every check that ran passed"))
    return int(ExitCode.FAILED if rep.failed else ExitCode.OK)


async def _list_models(backend: GeminiBackend, rep: _Report, model: str) -> None:
    try:
        names = await backend.list_models()
    except Failure as f:
        if f.cause is Cause.UNKNOWN_TARGET:  # a 404: this endpoint has no models list
            rep.line(f"list models (free): not available ({visible(f.short())[:120]})")
        else:
            rep.failed = True
            rep.line(rep.saw("list models (free)", f))
        return
    short = {n.removeprefix("models/") for n in names}
    listed = "listed" if model in short else "NOT listed"
    rep.line(f"list models (free): {len(names)} on the first page; {model}: {listed}")


async def _look_up_agents(backend: GeminiBackend, rep: _Report) -> None:
    seen: list[str] = []
    for name in known_agents():
        try:
            await backend.get_agent(name)
            seen.append(f"{name}: reachable")
        except Failure as f:
            if f.code == 404:
                seen.append(f"{name}: not found (404)")
            else:
                seen.append(rep.saw(name, f))
                if rep.key_unusable:
                    break
    if seen and all(s.endswith("not found (404)") for s in seen):
        rep.line("agent lookups (free): not available here (every lookup answered 404)")
        return
    for s in seen:
        rep.line(f"agent lookup (free): {s}")


async def _generate(
    backend: GeminiBackend, rep: _Report, prices: Prices, model: str, spend_ok: bool
) -> None:
    most = prices.cost_of(model, Usage(input_tokens=2 * estimate_tokens(PROBE_TEXT) + 16,
                                       output_tokens=PROBE_MAX_OUTPUT))  # fmt: skip
    what = f"generate_content with {model} ({PROBE_MAX_OUTPUT} output tokens at most)"
    if not spend_ok:
        rep.line(f"{what}: skipped; it bills at most {_money(most)}: allow it with --spend")
        return
    rep.line(f"{what}: bills at most {_money(most)}; calling")
    try:
        r = await backend.probe_generate(model, PROBE_TEXT, PROBE_MAX_OUTPUT)
    except Failure as f:
        rep.failed = True
        rep.line(rep.saw(f"  {model}", f))
        return
    cost = prices.cost_of(model, r.usage)
    text = visible(r.output or "")[:40]
    rep.line(f"  answer {text!r}; {_parsed(r)}; cost {_money(cost)}")
    if not r.usage.known or r.output is None:
        rep.failed = True


async def _agent_run(
    backend: GeminiBackend,
    rep: _Report,
    prices: Prices,
    agent: str,
    spend_ok: bool,
    wait_s: float,
    poll_s: float,
) -> None:
    worst = prices.worst_case(agent)
    bound = _money(worst) if worst is not None else "an amount no source bounds"
    if not spend_ok:
        rep.line(f"agent run with {agent}: skipped; one run can bill up to {bound}: "
                 "allow it with --spend")  # fmt: skip
        return
    rep.line(f"agent run with {agent}: can bill up to {bound}; starting one tiny run")
    try:
        r = await backend.launch(LaunchSpec(key="tuibatch-doctor", input_text=AGENT_PROBE_TEXT,
                                            agent=agent, labels={"tuibatch_doctor": "1"}))  # fmt: skip
        rep.line(f"  launched {r.run_id}: {_parsed(r)}")
        deadline = time.monotonic() + wait_s
        while not r.terminal and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
            r = await backend.poll(r.run_id)
        if not r.terminal:
            rep.line(f"  still {r.status!r} after {wait_s:.0f}s: cancelling (what ran is billed)")
            r = await backend.cancel(r.run_id) or r
    except Failure as f:
        rep.failed = True
        rep.line(rep.saw(f"  {agent}", f))
        return
    cost = prices.cost_of(agent, r.usage)
    rep.line(f"  ended: {_parsed(r)}; output {len(r.output or '')} characters; "
             f"cost {_money(cost)}")  # fmt: skip
    if r.status != "completed" or r.truncated:
        rep.failed = True
