"""The store's thread: one transaction at a time, never torn by a cancelled caller."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tuibatch.items import Item
from tuibatch.states import ItemState
from tuibatch.store import CheckpointError, Store


async def _store(tmp_path: Path, n: int = 2) -> Store:
    store = await Store.open(tmp_path / "c.db", create=True)
    await store.sync_items(
        [
            Item(seq=i, key=f"k{i}", input_text="x", payload_hash=f"h{i}", line=i + 1)
            for i in range(n)
        ]
    )
    return store


async def test_a_transaction_sent_is_committed_even_if_its_caller_is_cancelled(
    tmp_path: Path,
) -> None:
    store = await _store(tmp_path)
    try:
        claim = await store.claim()
        assert claim is not None
        gate = threading.Event()
        # hold the store's thread so the next transaction is sent but has not run yet
        blocker = asyncio.create_task(store.transaction(lambda con: gate.wait(10)))
        recording = asyncio.create_task(store.mark_running(claim.row.seq, "run-1", "sim-agent"))
        await asyncio.sleep(0)  # one loop turn: both tasks have sent their function to the thread
        assert not recording.done()
        recording.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await recording
        await blocker
        row = await store.get(claim.row.seq)  # queued after it: runs once it has
        assert row is not None and (row.state, row.run_id) == (ItemState.RUNNING, "run-1")
    finally:
        await store.close()


async def test_close_waits_for_what_was_sent_and_refuses_what_comes_after(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    sent = asyncio.create_task(store.skip(["k0"]))
    await asyncio.sleep(0)
    await store.close()
    assert await sent == {"k0": "skipped"}
    with pytest.raises(CheckpointError, match="closed"):
        await store.totals()
    again = await Store.open(tmp_path / "c.db", readonly=True)
    try:
        assert (await again.get_by_key("k0")).state is ItemState.SKIPPED  # type: ignore[union-attr]
    finally:
        await again.close()


async def test_a_failed_transaction_rolls_back_and_the_store_goes_on(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:

        def half_then_fail(con):  # type: ignore[no-untyped-def]
            con.execute("UPDATE items SET state='skipped' WHERE key='k0'")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await store.transaction(half_then_fail)
        assert (await store.get_by_key("k0")).state is ItemState.PENDING  # type: ignore[union-attr]
        await store.note("still writable")  # no transaction left open
        assert (await store.events())[-1].message == "still writable"
    finally:
        await store.close()
