"""What every worker checks between steps: stop, pause, skip requests; and naps that wake on them.

The checkpoint's control table is the channel from other processes (``tuibatch pause``, the app,
another worker's 429 hold): it is read every :data:`CONTROL_SECONDS`. The leases of the items
this worker holds are renewed here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..limiter import Pacer
from ..policy import Failure
from ..safe_text import visible
from ..states import PauseKind, PauseState
from ..store import Store, pause_state

log = logging.getLogger("tuibatch.engine")

#: how often the control table and skip requests are read
CONTROL_SECONDS = 0.3


#: what a batch-level failure's HTTP code means, at the head of the pause reason
class Control:
    def __init__(self, store: Store, pacer: Pacer) -> None:
        self.store = store
        self.pacer = pacer
        #: set once: stop claiming, let pollers go
        self.stop_event = asyncio.Event()
        self.pause = PauseState()
        #: bumped around each pause this worker writes: a read of the control table that
        #: overlaps one is older than it and must not undo it (a budget pause, say)
        self._pause_writes = 0
        #: items of this worker that a user asked to skip: cancel their runs
        self.cancel_flags: set[int] = set()
        self._wake = asyncio.Event()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    @property
    def batch_paused(self) -> bool:
        """Paused by the batch itself (not a user): a worker with nothing in flight exits."""
        return self.pause.active and self.pause.kind is PauseKind.BATCH

    def stop(self) -> None:
        self.stop_event.set()
        self.kick()

    # ------------------------------------------------------------------------ pause

    async def pause_batch(self, f: Failure) -> None:
        # the policy names the cause ("bad API key", "per-day quota exhausted", "no quota" …)
        await self.set_pause(f"{f.headline}: {f.short()}", PauseKind.BATCH)

    async def set_pause(self, reason: str, kind: PauseKind) -> None:
        if not self.pause.active:
            log.warning("batch paused: %s", visible(reason))
        self._pause_writes += 1
        self.pause = PauseState(True, reason, kind)
        try:
            await self.store.set_paused(True, reason, kind=kind)
        finally:
            self._pause_writes += 1

    # -------------------------------------------------------------- the control table

    async def read(self) -> None:
        writes = self._pause_writes
        ctl = await self.store.control()
        self.pacer.absorb(ctl)
        if writes == self._pause_writes:  # else this read may predate our own pause
            self.pause = pause_state(ctl)

    async def watch(self) -> None:
        """Forever: follow pauses and resumes, and skip requests for items held here."""
        while True:
            await asyncio.sleep(CONTROL_SECONDS)
            was = self.pause.active
            await self.read()
            if was and not self.pause.active:
                self.kick()
            for seq in await self.store.mine_to_cancel():
                if seq not in self.cancel_flags:
                    self.cancel_flags.add(seq)
                    self.kick()

    async def heartbeat(self) -> None:
        """Forever: renew this worker's leases every quarter of the lease time."""
        while True:
            await self.store.beat("worker")  # liveness: registers, then beats (store/monitor.py)
            await asyncio.sleep(max(1.0, self.store.lease_seconds / 4))
            await self.store.renew_leases()

    # -------------------------------------------------------------------------- naps

    def kick(self) -> None:
        """Wake every sleeper: each nap waits on the event that was current when it began."""
        self._wake.set()
        self._wake = asyncio.Event()

    async def nap(self, seconds: float) -> None:
        """Sleep, but wake at once on stop, resume or a cancel request."""
        if seconds <= 0 or self.stopped:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
