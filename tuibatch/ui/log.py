"""The log pane: a tail of the checkpoint's event log, optionally narrowed to one item.

Only the decisions a person follows are shown (launches, retries with reason and delay,
finishes, pauses, cancels); the "claimed"/"running" bookkeeping would drown them at speed.
Keys and messages are data from the items file and the service: shown visible, never as markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ..states import ItemState
from . import fmt
from .data import LogLine

_QUIET_STATES = (ItemState.CLAIMED, ItemState.RUNNING)


def describe(line: LogLine) -> tuple[str, str] | None:
    """(style, text) for one event, or None for bookkeeping the pane leaves out."""
    e = line.event
    who = f"{fmt.key(line.key, 60)} " if line.key else ""
    msg = fmt.one_line(e.message, 100)
    if e.kind == "state":
        if e.state in _QUIET_STATES or (e.state == ItemState.PENDING and e.message == "added"):
            return None
        sym = fmt.SYMBOL.get(e.state or "", "")
        tail = f": {fmt.one_line(e.message, 80)}" if e.message else ""
        return fmt.COLOR.get(e.state or "", ""), f"{who}{sym} {fmt.one_line(e.state)}{tail}"
    if e.kind == "attempt":
        if e.outcome == "launched":
            return "", f"{who}launched {msg} (attempt {e.attempt})"
        if e.outcome == "completed":
            toks = (e.tokens_in or 0) + (e.tokens_out or 0) + (e.tokens_thought or 0)
            return "", f"{who}completed: {fmt.tokens(toks)} tokens, {fmt.money(e.cost_usd)}"
        code = f" HTTP {e.http_code}" if e.http_code else ""
        delay = f", retry in {fmt.duration(e.delay)}" if e.delay else ""
        outcome = fmt.one_line(e.outcome)
        return (
            "yellow",
            f"{who}attempt {e.attempt} {outcome}{code}{delay}: {fmt.one_line(e.message, 80)}",
        )
    if e.kind in ("pause", "resume"):
        return "bold yellow", f"batch {'paused' if e.kind == 'pause' else 'resumed'}: {msg}"
    if e.kind == "cancel":
        return "magenta", f"{who}{msg or 'cancel requested'}"
    return "", f"{who}{fmt.one_line(e.kind)}: {msg}"


class EventLog(RichLog):
    """RichLog fed in batches (one write per poll) with a cap on kept lines."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id, max_lines=400, wrap=False, markup=False, highlight=False, auto_scroll=True
        )

    def add(self, lines: list[LogLine]) -> None:
        out = []
        for line in lines:
            d = describe(line)
            if d is None:
                continue
            style, text = d
            t = Text(fmt.clock(line.event.t) + " ", style="dim")
            t.append(text, style=style)
            out.append(t)
        for t in out[-200:]:
            self.write(t, scroll_end=True)
