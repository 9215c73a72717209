"""The SDK serializer speed-up (tuibatch/backends/sdk_speedup.py) changes speed and nothing else.

The equivalence test drives the real google-genai SDK against a fresh simulator over HTTP twice:
once with pydantic's own ``create_model`` in the SDK's serializers, once with the speed-up. Every
request body sent and every parsed object or exception must be equal field by field; only
wall-clock times, the simulator's port and its per-instance run ids are masked.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pydantic
import pytest
from google import genai
from google.genai import types
from google.genai._gaos.utils import requestbodies, serializers, unmarshal_json_response

from tuibatch.backends import sdk_speedup
from tuibatch.sim import SimulatorThread
from tuibatch.sim.faults import FAULT_KINDS
from tuibatch.sim.vocabulary import (
    BLOCK_REASONS,
    FINISH_REASONS,
    INTERACTION_STATUSES,
    UNKNOWN_STATUS,
)

AGENT = "sim-agent"
#: Values that legitimately differ between two runs: wall-clock times (to the second) and HTTP dates.
MASKED_KEYS = {"created", "updated", "date"}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(sdk_speedup.ENV_FLAG, raising=False)
    sdk_speedup.uninstall()
    yield
    sdk_speedup.uninstall()


# ------------------------------------------------------------------ the scenario


def _normalise(value: Any, url: str) -> Any:
    if isinstance(value, dict):
        return {
            k: "<masked>" if str(k).lower() in MASKED_KEYS else _normalise(v, url)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_normalise(v, url) for v in value]
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return value.replace(url, "<sim>")
    return value


def _raised(exc: Exception) -> dict[str, Any]:
    attrs = ("status_code", "body", "code", "status", "message", "details")
    return {
        "raised": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "str": str(exc),
        "attrs": {k: getattr(exc, k, None) for k in attrs},
    }


def _outcome(fn: Callable[[], Any]) -> dict[str, Any]:
    """A call's parsed result, or the exception it raised, as plain comparable data."""
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - every exception shape is part of the comparison
        return _raised(exc)
    if out is None:
        return {"returned": None}
    return {
        "returned": f"{type(out).__module__}.{type(out).__qualname__}",
        "dump": out.model_dump(),
    }


class _Recorder:
    """Drives one client through the scenario and keeps every outcome, in order."""

    def __init__(self, sim: SimulatorThread, client: Any) -> None:
        self.sim = sim
        self.client = client  # the Client closes its connections when it is collected
        self.ix: Any = client.interactions  # the typed overloads do not take **kwargs dicts
        self.gen: Any = client.models.generate_content
        self.results: list[tuple[str, Any]] = []
        self.ids: list[str] = []
        self.fault_kinds: set[str] = set()

    def record(self, label: str, fn: Callable[[], Any], *faults: dict[str, Any]) -> Any:
        self.sim.set_faults(list(faults))
        self.fault_kinds.update(f["fault"] for f in faults)
        outcome = _outcome(fn)
        self.results.append((label, outcome))
        for key in ("id", "response_id"):
            value = outcome.get("dump", {}).get(key)
            if isinstance(value, str) and value not in self.ids:
                self.ids.append(value)
        return outcome

    def run(self, label: str, *faults: dict[str, Any], expect: str = "completed", **kw: Any) -> str:
        """Create, then poll until the run shows ``expect``; record the create and the last get."""
        created = self.record(f"{label}/create", lambda: self.ix.create(**kw), *faults)
        run_id = created["dump"]["id"]
        self.sim.set_faults([])
        deadline = time.monotonic() + 10
        while True:  # intermediate polls are timing-dependent: only the last one is recorded
            out = _outcome(lambda: self.ix.get(run_id))
            if out.get("dump", {}).get("status") == expect or time.monotonic() > deadline:
                break
        self.results.append((f"{label}/final get", out))
        return str(run_id)


#: Fault kinds of the Interactions and generateContent routes (hang only delays). Batch and
#: file kinds are left out: client.batches / client.files (like client.models) never reach
#: google/genai/_gaos, the only code the speed-up touches; generateContent stays in as a control.
#: invalid_json / schema_mismatch change only the answer's text (JSON mode), never its shape.
SCENARIO_KINDS = {
    kind
    for kind, route in FAULT_KINDS.items()
    if route in ("create", "get", "cancel", "generate")
    and kind not in ("hang", "invalid_json", "schema_mismatch")
}
BG: dict[str, Any] = {"agent": AGENT, "background": True}
QUOTA_429 = {"fault": "http", "any": True, "code": 429, "quota_id": "PerMinute",
             "retry_delay": "1.5s", "retry_after": 2, "error_code": "too_many_requests"}  # fmt: skip
#: Request faults that answer an error without creating anything, on every launch route.
REQUEST_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("http 429", QUOTA_429),
    ("http 500", {"fault": "http", "any": True, "code": 500}),
    ("http 503", {"fault": "http", "any": True, "code": 503, "message": "Overloaded."}),
    ("http 400", {"fault": "http", "any": True, "code": 400}),
    ("http 404", {"fault": "http", "any": True, "code": 404}),
    ("per-day quota", {"fault": "per_day_quota", "any": True}),
    ("multi quota", {"fault": "multi_quota", "any": True}),
    ("free tier", {"fault": "free_tier", "any": True}),
    ("bad key 400", {"fault": "bad_key", "any": True}),
    ("bad key 401", {"fault": "bad_key", "any": True, "code": 401}),
    ("bad key 403", {"fault": "bad_key", "any": True, "code": 403}),
    ("precondition location", {"fault": "failed_precondition", "any": True}),
    ("precondition billing", {"fault": "failed_precondition", "any": True, "reason": "billing"}),
    ("html 502", {"fault": "html", "any": True}),
    ("drop", {"fault": "drop", "any": True}),
    ("created then dropped", {"fault": "create_then_drop", "any": True}),
    ("error after create", {"fault": "error_after_create", "any": True}),
    ("error after create, html", {"fault": "error_after_create", "any": True, "html": True}),
]
SHAPED_USAGE: list[tuple[str, dict[str, Any]]] = [
    ("output partial", {"output": "partial"}),
    ("output none", {"output": "none"}),
    ("no usage", {"usage": "none"}),
    ("cached and tool tokens", {"cached_tokens": 3, "tool_use_tokens": 5}),
]


def _interactions(r: _Recorder) -> None:
    r.run("agent", input="agent ok", labels={"tuibatch_item": "k1"}, **BG)
    done_id = r.run("agent, no labels", input="agent plain", **BG)
    for status in (*INTERACTION_STATUSES, UNKNOWN_STATUS):
        rule = {"fault": "run_status", "any": True, "status": status}
        r.run(f"run_status {status}", rule, expect=status, input=f"ends {status}", **BG)
    r.run("run_status idle with errors",
          {"fault": "run_status", "any": True, "status": "idle", "error_code": "E_IDLE"},
          expect="idle", input="idle errors", **BG)  # fmt: skip
    for status in ("failed", "incomplete", "budget_exceeded", "cancelled"):
        rule = {"fault": "run_failed", "any": True, "status": status, "error_code": "E_" + status}
        r.run(f"run_failed {status}", rule, expect=status, input=f"fails {status}", **BG)
    for label, shape in SHAPED_USAGE:
        r.run(f"usage {label}", {"fault": "usage", "any": True, **shape}, input=label, **BG)
    grounding = {"google_search": 2, "google_maps": 1, "retrieval": 4}
    r.run("grounding", {"fault": "usage", "any": True, "grounding": grounding}, input="g", **BG)
    r.run("model run", model="sim-model", input="model ok", system_instruction="Be terse.")
    r.run("thinking model", model="gemini-2.5-flash", input=[{"type": "text", "text": "hi"}])

    slow = r.record(
        "slow/create", lambda: r.ix.create(input="slow", **BG), {"fault": "slow", "any": True}
    )
    slow_id = slow["dump"]["id"]
    r.record("slow/get in progress", lambda: r.ix.get(slow_id))
    r.record("slow/cancel", lambda: r.ix.cancel(slow_id))
    r.record("slow/get cancelled", lambda: r.ix.get(slow_id))
    race = r.record(
        "race/create", lambda: r.ix.create(input="race", **BG), {"fault": "slow", "any": True}
    )
    race_id = race["dump"]["id"]
    r.record("race/cancel", lambda: r.ix.cancel(race_id), {"fault": "cancel_race", "any": True})
    r.record("cancel completed", lambda: r.ix.cancel(done_id))
    r.record("delete", lambda: r.ix.delete(done_id))

    for label, rule in REQUEST_FAULTS:
        r.record(f"create {label}", lambda: r.ix.create(input="e", **BG), rule)
    r.record("get 503", lambda: r.ix.get(slow_id), {**QUOTA_429, "code": 503, "on": "get"})
    r.record("get html", lambda: r.ix.get(slow_id), {"fault": "html", "any": True, "on": "get"})
    r.record("cancel 500", lambda: r.ix.cancel(slow_id),
             {"fault": "http", "any": True, "code": 500, "on": "cancel"})  # fmt: skip
    r.record("get lost", lambda: r.ix.get(slow_id), {"fault": "lost", "any": True})
    r.record("cancel lost", lambda: r.ix.cancel(slow_id))
    r.record("get unknown", lambda: r.ix.get("int_does_not_exist"))
    r.record(
        "unknown agent", lambda: r.ix.create(agent="no-such-agent", input="x", background=True)
    )
    r.record("unknown model", lambda: r.ix.create(model="no-such-model", input="x"))
    r.record("agent without background", lambda: r.ix.create(agent=AGENT, input="x"))


def _generate(r: _Recorder) -> None:
    r.record("generate", lambda: r.gen(model="sim-model", contents="gen ok"))
    r.record("generate thinking", lambda: r.gen(model="gemini-2.5-flash", contents="gen think"))
    for reason in FINISH_REASONS:
        rule = {"fault": "finish", "any": True, "reason": reason}
        r.record(f"finish {reason}", lambda: r.gen(model="sim-model", contents="f"), rule)
    for reason in BLOCK_REASONS:
        rule = {"fault": "blocked", "any": True, "reason": reason}
        r.record(f"blocked {reason}", lambda: r.gen(model="sim-model", contents="b"), rule)
    empty = {"fault": "empty_candidates", "any": True}
    r.record("empty candidates", lambda: r.gen(model="sim-model", contents="e"), empty)
    for label, shape in SHAPED_USAGE:
        rule = {"fault": "usage", "any": True, **shape}
        call = functools.partial(r.gen, model="sim-model", contents=label)
        r.record(f"generate usage {label}", call, rule)
    for label, rule in [*REQUEST_FAULTS, ("run_failed", {"fault": "run_failed", "any": True})]:
        r.record(f"generate {label}", lambda: r.gen(model="sim-model", contents="g"), rule)
    r.record("generate unknown model", lambda: r.gen(model="no-such-model", contents="g"))


def _scenario(sim: SimulatorThread) -> tuple[list[tuple[str, Any]], list[Any], set[str]]:
    """Every response shape the simulator produces, through the sync and async clients."""
    sent: list[tuple[str, str, bytes]] = []

    def hook(request: Any) -> None:
        entry = (request.method, request.url.path, request.content)
        if not sent or sent[-1] != entry:  # repeated polls: their number depends on timing
            sent.append(entry)

    options = types.HttpOptions(
        base_url=sim.url,
        retry_options=types.HttpRetryOptions(attempts=1),
        timeout=10_000,
        client_args={"event_hooks": {"request": [hook]}},  # the async client (aiohttp) has none
    )
    client = genai.Client(api_key="dummy", http_options=options)
    r = _Recorder(sim, client)
    _interactions(r)
    _generate(r)
    bad = _Recorder(sim, genai.Client(api_key="invalid-key", http_options=options))
    bad.record("invalid key/create", lambda: bad.ix.create(input="k", **BG))
    bad.record("invalid key/generate", lambda: bad.gen(model="sim-model", contents="k"))

    async def async_path() -> list[tuple[str, Any]]:
        aix: Any = client.aio.interactions
        it = await aix.create(input="async ok", **BG)
        first = it.model_dump()
        deadline = time.monotonic() + 10
        while it.status != "completed" and time.monotonic() < deadline:
            it = await aix.get(it.id)
        sim.set_faults([{"fault": "slow", "any": True}])  # still running when the cancel lands
        slow = await aix.create(input="async slow", **BG)
        cancelled = await aix.cancel(slow.id)
        gen_out = await client.aio.models.generate_content(model="sim-model", contents="async gen")
        sim.set_faults([{**QUOTA_429, "on": "get"}])
        try:
            error: Any = (await aix.get(it.id)).model_dump()
        except Exception as exc:  # noqa: BLE001 - compared like every other outcome
            error = _raised(exc)
        return [("async/create", first), ("async/final get", it.model_dump()),
                ("async/cancel", cancelled.model_dump()), ("async/generate", gen_out.model_dump()),
                ("async/error", error)]  # fmt: skip

    sim.set_faults([])
    results = [*r.results, *bad.results]
    results.extend(asyncio.run(async_path()))
    ids = list(r.ids)
    for _, value in results[len(r.results) :]:
        dump = value.get("dump", value) if isinstance(value, dict) else {}
        ids += [v for k in ("id", "response_id") if isinstance(v := dump.get(k), str) and v]
    text = json.dumps(_normalise([results, sent], sim.url), default=repr, sort_keys=True)
    for n, run_id in sorted(enumerate(ids), key=lambda x: -len(x[1])):
        text = text.replace(run_id, f"<id{n}>")
    out_results, out_sent = json.loads(text)
    return [tuple(x) for x in out_results], out_sent, r.fault_kinds


def _dump(results: list[tuple[str, Any]], label: str) -> dict[str, Any]:
    return dict(results)[label]


def test_same_requests_same_parsed_objects_with_and_without_speedup() -> None:
    assert serializers.create_model is pydantic.create_model
    with SimulatorThread(run_seconds=0.05, invalid_keys=["invalid-key"]) as sim:
        plain, plain_sent, kinds = _scenario(sim)
    assert serializers.create_model is pydantic.create_model  # nothing installed it meanwhile

    status = sdk_speedup.install()
    assert status.applied, status.reason
    wrapper = sdk_speedup.active()
    assert wrapper is not None
    assert serializers.create_model is sdk_speedup.active()
    with SimulatorThread(run_seconds=0.05, invalid_keys=["invalid-key"]) as sim:
        fast, fast_sent, _ = _scenario(sim)
    assert wrapper.hits > 100 and wrapper.misses <= wrapper.cached_types() + 5

    # The scenario really produced the shapes it claims (so equality below is not vacuous) ...
    assert kinds >= SCENARIO_KINDS, "a simulator fault kind is not exercised here"
    for status_name in (*INTERACTION_STATUSES, UNKNOWN_STATUS):
        final = _dump(plain, f"run_status {status_name}/final get")
        assert final["dump"]["status"] == status_name, final
    assert _dump(plain, "agent/create")["dump"]["status"] == "queued"
    assert _dump(plain, "slow/get in progress")["dump"]["status"] == "in_progress"
    assert _dump(plain, "slow/cancel")["dump"]["status"] == "cancelled"
    assert _dump(plain, "race/cancel")["dump"]["status"] == "completed"
    assert _dump(plain, "async/cancel")["status"] == "cancelled"
    assert "raised" in _dump(plain, "async/error")
    assert "usage" not in _dump(plain, "usage no usage/final get")["dump"]
    assert _dump(plain, "grounding/final get")["dump"]["usage"]["grounding_tool_count"]
    for reason in FINISH_REASONS:
        candidate = _dump(plain, f"finish {reason}")["dump"]["candidates"][0]
        assert str(candidate["finish_reason"]).endswith(reason)
    for label, _ in REQUEST_FAULTS:
        assert "raised" in _dump(plain, f"create {label}"), label
        assert "raised" in _dump(plain, f"generate {label}"), label
    assert _dump(plain, "create http 429")["attrs"]["status_code"] == 429
    assert _dump(plain, "generate http 429")["attrs"]["code"] == 429
    assert _dump(plain, "invalid key/create")["attrs"]["status_code"] == 400, _dump(
        plain, "invalid key/create"
    )
    assert len(plain_sent) >= 60

    # ... and with the speed-up every parsed object, exception and request body is the same.
    assert [label for label, _ in fast] == [label for label, _ in plain]
    for (label, a), (_, b) in zip(plain, fast, strict=True):
        assert b == a, label
    assert fast_sent == plain_sent


# ------------------------------------------------------------------ install / guard / flag


def test_install_patches_one_binding_and_uninstall_restores_it() -> None:
    functions = (serializers.marshal_json, serializers.unmarshal, serializers.unmarshal_json)
    status = sdk_speedup.install()
    assert status == sdk_speedup.SpeedupStatus(True, "applied to google-genai 3.6.1")
    assert isinstance(serializers.create_model, sdk_speedup.CachedCreateModel)
    # The functions are untouched, and the copies other SDK modules imported are the same objects.
    assert (
        serializers.marshal_json,
        serializers.unmarshal,
        serializers.unmarshal_json,
    ) == functions
    assert requestbodies.marshal_json is serializers.marshal_json
    assert unmarshal_json_response.unmarshal_json is serializers.unmarshal_json

    from google.genai._gaos.utils import queryparams, url

    for helper in (url, queryparams):
        assert isinstance(helper.get_type_hints, sdk_speedup.CachedTypeHints)
    hints = url.get_type_hints
    assert hints(sdk_speedup.SpeedupStatus) == typing.get_type_hints(sdk_speedup.SpeedupStatus)
    assert hints(sdk_speedup.SpeedupStatus) is not hints(sdk_speedup.SpeedupStatus)  # copies

    assert sdk_speedup.uninstall() is True
    assert serializers.create_model is pydantic.create_model
    assert url.get_type_hints is queryparams.get_type_hints is typing.get_type_hints
    assert sdk_speedup.active() is None
    assert sdk_speedup.uninstall() is False


def test_install_twice_is_harmless() -> None:
    first = sdk_speedup.install()
    wrapper = sdk_speedup.active()
    second = sdk_speedup.install()
    assert first.applied and second == sdk_speedup.SpeedupStatus(True, "already installed")
    assert wrapper is not None and sdk_speedup.active() is wrapper
    assert serializers.create_model is sdk_speedup.active()
    assert wrapper.original is pydantic.create_model  # never wraps itself
    sdk_speedup.uninstall()
    assert serializers.create_model is pydantic.create_model


def test_unverified_sdk_version_is_refused_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from google.genai import version

    monkeypatch.setattr(version, "__version__", "3.7.0")
    with caplog.at_level(logging.WARNING, logger="tuibatch.backends"):
        status = sdk_speedup.install()
    assert not status.applied and "3.7.0" in status.reason
    assert serializers.create_model is pydantic.create_model
    assert any("3.7.0" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_unexpected_sdk_shape_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def other_create_model(*args: Any, **kwargs: Any) -> Any:
        return pydantic.create_model(*args, **kwargs)

    monkeypatch.setattr(serializers, "create_model", other_create_model)
    with caplog.at_level(logging.WARNING, logger="tuibatch.backends"):
        status = sdk_speedup.install()
    assert not status.applied and "create_model" in status.reason
    assert serializers.create_model is other_create_model
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_env_flag_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUIBATCH_SDK_SPEEDUP", "0")
    status = sdk_speedup.install()
    assert status == sdk_speedup.SpeedupStatus(False, "disabled by TUIBATCH_SDK_SPEEDUP=0")
    assert serializers.create_model is pydantic.create_model
    monkeypatch.setenv("TUIBATCH_SDK_SPEEDUP", "1")
    assert sdk_speedup.install().applied


# ------------------------------------------------------------------ the cache's own rules

CONFIG = pydantic.ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)


def test_cache_reuses_only_the_same_type_object_and_keeps_the_module() -> None:
    wrapper = sdk_speedup.CachedCreateModel(pydantic.create_model, serializers.__name__)
    int_or_str: Any = int | str
    str_or_int: Any = str | int
    assert int_or_str == str_or_int  # equal, and hash alike, yet pydantic tries them in order
    a = wrapper("Unmarshaller", body=(int_or_str, ...), __config__=dict(CONFIG))
    assert wrapper("Unmarshaller", body=(int_or_str, ...), __config__=dict(CONFIG)) is a
    assert a.__module__ == serializers.__name__
    # Same key by equality, different object: never shared (it replaces the cached entry).
    b = wrapper("Unmarshaller", body=(str_or_int, ...), __config__=dict(CONFIG))
    assert b is not a and b(body="1").body == "1"
    # Marshaller and Unmarshaller of one type are different classes, as in the SDK.
    m = wrapper("Marshaller", body=(int_or_str, ...), __config__=dict(CONFIG))
    assert m is not a and m is not b
    assert (wrapper.hits, wrapper.misses) == (1, 3)
    # A class from the SDK's own call and a cached one are built alike.
    fresh = pydantic.create_model(
        "Unmarshaller", body=(int_or_str, ...), __config__=CONFIG,
        __module__=serializers.__name__,
    )  # fmt: skip
    assert fresh.model_json_schema() == a.model_json_schema()
    assert fresh.__qualname__ == a.__qualname__ and fresh.__module__ == a.__module__


def test_unhashable_or_unexpected_calls_go_straight_to_pydantic() -> None:
    wrapper = sdk_speedup.CachedCreateModel(pydantic.create_model, serializers.__name__)
    unhashable = Annotated[int, ["unhashable metadata"]]
    first = wrapper("Unmarshaller", body=(unhashable, ...), __config__=dict(CONFIG))
    assert wrapper("Unmarshaller", body=(unhashable, ...), __config__=dict(CONFIG)) is not first
    assert first(body=3).body == 3
    other_config = {"populate_by_name": False}
    assert wrapper("Unmarshaller", body=(int, ...), __config__=other_config) is not wrapper(
        "Unmarshaller", body=(int, ...), __config__=other_config
    )
    assert wrapper("Other", body=(int, ...), __config__=dict(CONFIG)) is not wrapper(
        "Other", body=(int, ...), __config__=dict(CONFIG)
    )
    assert (wrapper.hits, wrapper.misses, wrapper.cached_types()) == (0, 0, 0)
