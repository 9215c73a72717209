"""Header and cost meter: progress, per-state counts (which are also filters), rate, pause state.

Both are plain Statics re-rendered from one :class:`Snapshot`, so a burst of events costs one
redraw per poll, not one per event. Text that comes from the checkpoint (the batch title, pause
and back-off reasons) is assembled as plain content, never parsed as markup, and made visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from ..owner import hostname
from ..pricing import BATCH_DISCOUNT
from ..states import UNFINISHED, ExitCode, ItemState
from ..store.monitor import Liveness
from . import fmt
from .data import Snapshot

_LEFT = tuple(UNFINISHED)


@dataclass(frozen=True)
class WorkerView:
    """What the app knows about the workers: its own subprocess (pid, exit status), and which
    workers the checkpoint says are alive (``liveness``; None until first read)."""

    ours: bool = False
    pid: int | None = None
    #: the exit status of our worker once it has exited; None while it runs
    exit_code: int | None = None
    following: bool = False
    liveness: Liveness | None = None
    #: how to start a worker on this checkpoint, for the "no worker running" line
    start_hint: str = "tuibatch ITEMS --db DB"

    @property
    def exited(self) -> bool:
        return self.ours and self.exit_code is not None

    @property
    def others(self) -> int:
        """Live workers other than ours."""
        if self.liveness is None:
            return 0
        return sum(1 for w in self.liveness.workers if not (self.ours and w.pid == self.pid))

    @property
    def none_alive(self) -> bool:
        """Nobody works on this checkpoint: ours exited (or none) and no other worker lives."""
        if self.ours and self.exit_code is None:
            return False
        return self.liveness is not None and self.others == 0

    def text(self) -> str:
        follow = " · follow" if self.following else ""
        if not self.ours:
            if self.liveness is None:
                return "watching" + follow
            if self.none_alive:
                n = self.liveness.in_flight
                return (
                    f"no worker running — {n} item(s) were in flight;"
                    f" start one with `{self.start_hint}`"
                )
            return "watching · " + _alive_text(self.liveness) + follow
        if self.exit_code is not None:
            more = f" · {self.others} other worker(s) alive" if self.others else ""
            return "worker " + fmt.exit_text(self.exit_code) + more
        more = f" + {self.others} other worker(s)" if self.others else ""
        return f"worker pid {self.pid}{more}" + follow

    def style(self) -> str:
        if not self.ours and self.none_alive:
            return "bold $warning"
        if self.exit_code is None:
            return ""
        if self.exit_code == ExitCode.OK:
            return "$success"
        return "$warning" if self.exit_code in (ExitCode.PAUSED, ExitCode.INTERRUPTED) else "$error"


def _alive_text(live: Liveness) -> str:
    """``1 worker alive: pid 4242`` / ``3 workers alive: pid 1, 2 (host b) …``."""
    here = hostname()
    pids = [
        f"pid {w.pid}" + ("" if w.host == here else f" on {fmt.key(w.host, 20)}")
        for w in live.workers[:3]
    ]
    more = " …" if len(live.workers) > 3 else ""
    n = len(live.workers)
    return f"{n} worker{'s' if n != 1 else ''} alive: {', '.join(pids)}{more}"


def rate_per_min(s: Snapshot) -> float | None:
    if s.window < 5 or s.finished_recent == 0:
        return None
    return s.finished_recent / s.window * 60


def left_of(s: Snapshot) -> int:
    """Items a worker still has to do (pending, claimed, running)."""
    return sum(s.totals.counts.get(k, 0) for k in _LEFT)


def pause_text(control: dict[str, str], now: float) -> str:
    """ "paused: budget reached", "backing off 12 s: 429 …", or "" when claiming freely."""
    if control.get("paused") == "1":
        return "paused: " + fmt.one_line(control.get("pause_reason") or "by user", 60)
    try:
        until = float(control.get("hold_until_wall", "0") or 0)
    except ValueError:
        until = 0.0
    if until > now:
        reason = fmt.one_line(control.get("hold_reason", ""), 44)
        return f"backing off {until - now:.0f} s" + (f": {reason}" if reason else "")
    return ""


def progress_tail(s: Snapshot, worker: WorkerView) -> str:
    """`` 20/40  50%  22.0/min  ETA 46.4s``; once nothing is left or the worker is gone, ``N left``."""
    t = s.totals
    done = t.counts.get(ItemState.DONE, 0)
    pct = done / t.total if t.total else 0.0
    rate = rate_per_min(s)
    left = left_of(s)
    rate_txt = f"{rate:.1f}/min" if rate else "-/min"
    if left == 0 or worker.exited or worker.none_alive:
        eta = f"{left} left"
    else:
        eta = f"ETA {fmt.duration(left / rate * 60)}" if rate else "ETA -"
    return f" {done}/{t.total} {pct:4.0%}  {rate_txt}  {eta}"


def status_line(s: Snapshot, now: float, worker: WorkerView) -> Content:
    """Line 3: what the batch is doing (paused / backing off / claiming), then the worker."""
    paused = s.control.get("paused") == "1"
    # a back-off is the worker's own: once it has exited, only a pause still means something
    gone = worker.exited or worker.none_alive
    status = pause_text(s.control, now) if paused or not gone else ""
    parts: list[str | Content | tuple[str, str]] = []
    if status:
        parts.append((status, "bold $warning"))
    elif not gone:
        idle = left_of(s) == 0
        parts.append(("nothing left to claim", "$text-muted") if idle else ("claiming", "$success"))
    if parts:
        parts.append("  ")
    parts.append((worker.text(), worker.style()))
    return Content.assemble(*parts)


class BatchHeader(Static):
    """Three lines: title + progress, state counts, status (pause / back-off / worker)."""

    def show(
        self,
        s: Snapshot,
        *,
        title: str,
        now: float,
        state_filter: str | None,
        worker: WorkerView,
        width: int,
    ) -> None:
        t = s.totals
        done = t.counts.get(ItemState.DONE, 0)
        pct = done / t.total if t.total else 0.0
        tail = progress_tail(s, worker)
        title = fmt.key(title, 24)
        bar_w = max(5, width - len(title) - len(tail) - 4)
        line1 = Content.assemble((title, "bold"), " ", (fmt.bar(pct, bar_w), "$success"), tail)
        parts: list[Content] = []
        for i, state in enumerate(fmt.STATES, start=1):
            n = t.counts.get(state, 0)
            if state == ItemState.LOST and not n and state_filter != state:
                continue  # rare: shown only when there is something to see
            # Textual spells the ANSI-16 colors ansi_*: an unknown color name ("bright_black")
            # makes Textual drop the whole style, the @click with it
            color = f"ansi_{fmt.COLOR[state]}"
            style = f"{color} reverse" if state_filter == state else color
            label = f"{i}{fmt.SYMBOL[state]}{state} {n}"
            parts.append(Content.styled(label, f"{style} @click=app.show_state('{state}')"))
        all_style = "reverse " if state_filter is None else ""
        parts.append(Content.styled("0 all", f"{all_style}@click=app.show_state('')"))
        line2 = Content(" ").join(parts)
        line3 = status_line(s, now, worker)
        self.update(Content("\n").join((line1, line2, line3)))


def batch_share() -> str:
    """The batch rate as a share of the interactive one: ``½``, else a percentage."""
    return "½" if BATCH_DISCOUNT == 0.5 else f"{BATCH_DISCOUNT:.0%}"


def interactive_equivalent(s: Snapshot) -> tuple[float, float]:
    """(what the work so far would have cost interactively, what the batch rate saved).

    Batch API results are priced at the batch rate (the interactive price of their usage
    times :data:`BATCH_DISCOUNT`), so the jobs' spend divided by it is the same usage at the
    interactive price; items run interactively already are at that price.
    """
    saved = s.batch_usd / BATCH_DISCOUNT - s.batch_usd if BATCH_DISCOUNT > 0 else 0.0
    return s.totals.cost_usd + saved, saved


def batch_text(s: Snapshot, room: int) -> str:
    """``batch rate ½: jobs $0.50 · interactively $1.00 (saved $0.50)``, shorter forms when
    *room* is narrow; "" when no Batch API job was recorded."""
    if not s.batch_jobs:
        return ""
    whole, saved = interactive_equivalent(s)
    share = batch_share()
    if not s.batch_usd:
        jobs = f"{s.batch_jobs} job{'s' if s.batch_jobs != 1 else ''}"
        return fmt.cut(f"batch rate {share}: {jobs}, nothing billed yet", room)
    forms = (
        f"batch rate {share}: jobs {fmt.money(s.batch_usd)} · interactively"
        f" {fmt.money(whole)} (saved {fmt.money(saved)})",
        f"batch {share}: interactively {fmt.money(whole)} (saved {fmt.money(saved)})",
        f"batch {share}, interactively {fmt.money(whole)}",
        f"batch {share} · inter. {fmt.money(whole)}",
    )
    for form in forms:
        if len(form) <= room:
            return form
    return fmt.cut(forms[-1], room)


class CostMeter(Static):
    """Tokens, spent, wasted, projected total, budget bar, the price-unknown count, and for
    Batch API jobs the batch rate with what the same work would have cost interactively."""

    def show(self, s: Snapshot, *, budget: float | None, width: int) -> None:
        t = s.totals
        finished_paid = t.counts.get(ItemState.DONE, 0) + t.counts.get(ItemState.FAILED, 0)
        left = left_of(s)
        projected = t.cost_usd + (t.cost_usd / finished_paid * left if finished_paid else 0.0)
        toks = (
            f"in {fmt.tokens(t.tokens_in)} out {fmt.tokens(t.tokens_out)}"
            f" think {fmt.tokens(t.tokens_thought)}"
        )
        line1 = (
            f"{'tokens' if width >= 90 else 'tok'} {toks} │ {fmt.money(t.cost_usd)} spent"
            f" │ {fmt.money(t.wasted_usd)} wasted"
            f" │ {'projected' if width >= 90 else 'proj.'}"
            f" {fmt.money(projected) if finished_paid else '-'}"
        )
        parts: list[str | tuple[str, str]] = [line1]
        line2: list[str | tuple[str, str]] = []
        room = max(0, width - 2)  # the meter's padding
        unpriced = f"{t.unpriced} price unknown" if t.unpriced else ""
        batch = batch_text(s, room) if s.batch_jobs else ""
        if budget:
            frac = t.cost_usd / budget if budget > 0 else 1.0
            style = "$error" if frac >= 1 else ("$warning" if frac >= 0.8 else "$success")
            tail = f" {fmt.money(t.cost_usd)} of {fmt.money(budget)} ({frac:.0%})"
            bw = max(5, min(30, width - 60))
            if batch:  # the batch line keeps its short form; the bar gives way first
                others = len("budget ") + len(tail) + (len(unpriced) + 2 if unpriced else 0)
                batch = batch_text(s, max(0, room - others - 5 - 2))
                bw = max(5, min(bw, room - others - len(batch) - 2))
            line2 += ["budget ", (fmt.bar(frac, bw), style), tail]
        if unpriced:
            line2 += ["  " if line2 else "", (unpriced, "bold $warning")]
        if batch:
            line2 += ["  " if line2 else "", (batch, "$success")]
        if line2:
            parts += ["\n", *line2]
        self.update(Content.assemble(*parts))
