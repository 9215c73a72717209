"""What the engine shows the outside: its log records, its probe points, its pause state.

The real engine and the real SDK backend against the simulator, as in test_errors.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tuibatch.backends.gemini import Credentials, GeminiBackend
from tuibatch.engine import Engine, EngineConfig
from tuibatch.items import load_items
from tuibatch.policy import Backoff
from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread
from tuibatch.states import ItemState, PauseKind, PauseState
from tuibatch.store import Store

EVIL = "evil\x1b]0;pwned\x07\nkey"


def _items(path: Path, keys: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, key in enumerate(keys):
            f.write(json.dumps({"key": key, "payload": {"n": i}}) + "\n")
    return path


async def _engine(
    tmp_path: Path, sim: SimulatorThread, keys: list[str], **kw: Any
) -> tuple[Store, Engine]:
    store = await Store.open(tmp_path / "c.db", create=True)
    await store.sync_items(load_items(_items(tmp_path / "items.jsonl", keys)))
    backend = GeminiBackend(Credentials(api_key="dummy-test-key", base_url=sim.url), timeout_s=5.0)
    cfg = EngineConfig(
        concurrency=2,
        agent="sim-agent",
        poll_initial=0.05,
        poll_max=0.2,
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    return store, Engine(store, backend, load_prices(), cfg, **kw)


async def _run(store: Store, engine: Engine) -> None:
    try:
        await asyncio.wait_for(engine.run(), 20)
    finally:
        await engine.backend.close()


async def test_log_records_name_keys_escaped_and_levels_say_what_they_are(
    tmp_path: Path, sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tuibatch.engine")
    sim.set_faults([{"item": EVIL, "fault": "http", "code": 400, "times": 1}])
    store, engine = await _engine(tmp_path, sim, [EVIL, "plain"])
    try:
        await _run(store, engine)
        assert (await store.get_by_key(EVIL)).state is ItemState.FAILED  # type: ignore[union-attr]
    finally:
        await store.close()
    mine = [r for r in caplog.records if r.name == "tuibatch.engine"]
    failed = [r for r in mine if "failed" in r.getMessage()]
    assert failed and failed[0].levelno == logging.INFO
    text = failed[0].getMessage()
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert "evil␛]0;pwned\\x07\\nkey" in text


async def test_probe_points_are_called_where_the_crash_windows_are(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    seen: list[str] = []
    store, engine = await _engine(tmp_path, sim, ["a", "b", "c"], probe=seen.append)
    try:
        await _run(store, engine)
        assert (await store.totals()).counts == {ItemState.DONE: 3}
    finally:
        await store.close()
    # per agent item: the launch returned; its run id committed; its result committed
    assert seen.count("after_launch") == 3 and seen.count("after_commit") == 6
    assert set(seen) == {"after_launch", "after_commit"}


async def test_pause_is_a_frozen_state_with_its_kind(tmp_path: Path, sim: SimulatorThread) -> None:
    sim.set_faults([{"any": True, "fault": "http", "code": 401, "times": None}])
    store, engine = await _engine(tmp_path, sim, ["a", "b"])
    try:
        assert engine.pause == PauseState()
        await _run(store, engine)
        pause = engine.pause
        assert pause.active and pause.kind is PauseKind.BATCH and "401" in pause.reason
        with pytest.raises(dataclasses.FrozenInstanceError):
            pause.active = False  # type: ignore[misc]
        assert await store.pause_state() == pause
        assert (await store.totals()).counts == {ItemState.PENDING: 2}
    finally:
        await store.close()


async def test_a_users_pause_is_read_from_the_checkpoint(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    store, engine = await _engine(tmp_path, sim, ["a"])
    try:
        await store.set_paused(True, "by user", kind=PauseKind.USER)
        task = asyncio.create_task(engine.run())

        async def paused() -> None:
            while not engine.pause.active:  # run() reads the control table before anything else
                await asyncio.sleep(0.01)

        await asyncio.wait_for(paused(), 10)
        assert engine.pause == PauseState(True, "by user", PauseKind.USER)
        engine.stop()
        await asyncio.wait_for(task, 20)
        assert (await store.totals()).counts == {ItemState.PENDING: 1}, "a paused batch launched"
    finally:
        await engine.backend.close()
        await store.close()
