"""A hypothesis state machine over the checkpoint: claims, launches, crashes, takeovers,
skips and retries from several workers on one file.

Invariants: every done item has a run id; no item is held by two live workers; a
running item has a run id and a claimed one has none; no result is ever overwritten.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tuibatch.items import Item
from tuibatch.states import IN_FLIGHT, ItemState
from tuibatch.store import Attempt, LostLease, Store

N_ITEMS = 6
WORKERS = (
    "hostA",
    "hostB",
    "hostC",
)  # other hosts: only an expired lease lets anyone take their items


class CheckpointMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="tb-hyp-"))
        self.db = self.dir / "c.db"
        self.gen = dict.fromkeys(WORKERS, 0)
        self.stores: dict[str, Store] = {}
        self.held: dict[str, dict[int, str | None]] = {w: {} for w in WORKERS}  # seq -> run id
        self.results: dict[int, tuple[str, str]] = {}  # seq -> (run id, output) once done
        self.runs = 0
        self.cli = self.run(Store.open(self.db, create=True, owner="cli:0:0"))
        items = [
            Item(seq=i, key=f"k{i}", input_text=f"in{i}", payload_hash=f"h{i}", line=i + 1)
            for i in range(N_ITEMS)
        ]
        self.run(self.cli.sync_items(items))
        for w in WORKERS:
            self.stores[w] = self._new_store(w)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def _new_store(self, w: str) -> Store:
        return self.run(Store.open(self.db, owner=f"{w}:{self.gen[w]}:0", lease_seconds=3600))

    def teardown(self) -> None:
        for s in [*self.stores.values(), self.cli]:
            self.run(s.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ rules

    @rule(w=st.sampled_from(WORKERS))
    def claim(self, w: str) -> None:
        c = self.run(self.stores[w].claim())
        if c is None:
            return
        seq = c.row.seq
        for other in WORKERS:
            assert other == w or seq not in self.held[other], (
                f"{w} claimed {seq} that {other} still holds"
            )
        if c.resume:
            assert c.row.run_id
        self.held[w][seq] = c.row.run_id if c.resume else None

    @rule(w=st.sampled_from(WORKERS), data=st.data())
    def launch(self, w: str, data: st.DataObject) -> None:
        ready = sorted(s for s, run in self.held[w].items() if run is None)
        if not ready:
            return
        seq = data.draw(st.sampled_from(ready))
        self.runs += 1
        run_id = f"run-{self.runs}"
        self.run(self.stores[w].mark_running(seq, run_id, "sim-agent"))
        self.held[w][seq] = run_id

    @rule(w=st.sampled_from(WORKERS), data=st.data(), ok=st.booleans())
    def finish(self, w: str, data: st.DataObject, ok: bool) -> None:
        running = sorted(s for s, run in self.held[w].items() if run is not None)
        if not running:
            return
        seq = data.draw(st.sampled_from(running))
        run_id = self.held[w].pop(seq)
        assert run_id is not None
        output = f"out-{seq}-{run_id}"
        state = ItemState.DONE if ok else ItemState.FAILED
        try:
            self.run(
                self.stores[w].finish(
                    seq, state, run_id=run_id, output=output, a=Attempt(outcome=state)
                )
            )
        except LostLease:
            raise AssertionError(f"live worker {w} lost item {seq}") from None
        if ok:
            assert seq not in self.results, "an item finished twice"
            self.results[seq] = (run_id, output)

    @rule(w=st.sampled_from(WORKERS))
    def crash(self, w: str) -> None:
        """The worker dies: its leases lapse; a new incarnation starts with a new owner id."""
        old = self.stores[w]
        self.run(
            old.transaction(
                lambda con: con.execute(
                    "UPDATE items SET lease_until=0 WHERE owner=?", (old.owner,)
                )
            )
        )
        self.run(old.close())
        self.gen[w] += 1
        self.stores[w] = self._new_store(w)
        self.held[w] = {}

    @rule(w=st.sampled_from(WORKERS))
    def stale_write_is_refused(self, w: str) -> None:
        """A worker that died cannot commit for an item another worker took over."""
        taken = [r for r in self.run(self.cli.items(IN_FLIGHT)) if r.owner != self.stores[w].owner]
        if not taken:
            return
        seq = taken[0].seq
        try:
            self.run(
                self.stores[w].finish(
                    seq, ItemState.DONE, run_id="zombie", output="zombie", a=Attempt(outcome="done")
                )
            )
        except LostLease:
            return
        raise AssertionError("a worker wrote a result for an item it does not hold")

    @rule(i=st.integers(0, N_ITEMS - 1))
    def skip(self, i: int) -> None:
        self.run(self.cli.skip([f"k{i}"]))

    @rule(i=st.integers(0, N_ITEMS - 1))
    def retry(self, i: int) -> None:
        self.run(self.cli.retry([f"k{i}"]))

    @precondition(lambda self: any(self.held.values()))
    @rule(w=st.sampled_from(WORKERS))
    def honour_cancel(self, w: str) -> None:
        """The owner sees a skip request on a held item and finishes it as skipped."""
        for seq in list(self.held[w]):
            if self.run(self.stores[w].cancel_requested(seq)):
                self.held[w].pop(seq)
                self.run(
                    self.stores[w].finish(seq, ItemState.SKIPPED, a=Attempt(outcome="cancelled"))
                )
                return

    # ------------------------------------------------------------- invariants

    @invariant()
    def rows_are_consistent(self) -> None:
        rows = self.run(self.cli.items())
        by_seq = {r.seq: r for r in rows}
        for r in rows:
            assert isinstance(r.state, ItemState)
            if r.state is ItemState.DONE:
                assert r.run_id, f"done item {r.key} has no run id"
            if r.state is ItemState.RUNNING:
                assert r.run_id, f"running item {r.key} has no run id"
        for w in WORKERS:
            for seq in self.held[w]:
                r = by_seq[seq]
                assert r.owner == self.stores[w].owner, (
                    f"{w} believes it holds {r.key}, owner is {r.owner}"
                )
                assert r.state in IN_FLIGHT
        for seq, (run_id, output) in self.results.items():
            r = by_seq[seq]
            assert (r.state, r.run_id, r.output) == (ItemState.DONE, run_id, output), (
                f"result of {r.key} overwritten"
            )


CheckpointMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None
)
TestCheckpoint = CheckpointMachine.TestCase
