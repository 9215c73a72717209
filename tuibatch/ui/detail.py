"""The detail view of one item: input, output, error, run id and its attempt history.

Read once from the store when opened (``get(seq)`` + ``events(seq=…)``) and re-read on
``ctrl+r``; the item's full input/output are only ever loaded here, never for the table.
"""

from __future__ import annotations

import json
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Static

from ..store import Event, Row
from . import fmt


def pretty_input(row: Row) -> str:
    try:
        return json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return row.payload or row.input


def history_table(events: list[Event]) -> Table:
    """Attempts and state changes: time, outcome, HTTP code, delay, tokens, cost."""
    table = Table(box=None, header_style="bold", pad_edge=False, expand=True)
    for name, just in (("time", "left"), ("#", "right"), ("outcome", "left"), ("http", "right"),
                       ("delay", "right"), ("tokens", "right"), ("cost", "right"),
                       ("message", "left")):
        table.add_column(name, justify=just, no_wrap=name != "message")  # type: ignore[arg-type]
    for e in events:
        if e.kind == "state":
            if e.state in ("claimed", "running"):
                continue
            outcome = Text(f"{fmt.SYMBOL.get(e.state or '', '')} {e.state}",
                           style=fmt.COLOR.get(e.state or "", ""))
        elif e.kind == "attempt":
            outcome = Text(e.outcome or "")
        else:
            outcome = Text(e.kind)
        toks = (e.tokens_in or 0) + (e.tokens_out or 0) + (e.tokens_thought or 0)
        table.add_row(
            fmt.clock(e.t), str(e.attempt or ""), outcome, str(e.http_code or ""),
            fmt.duration(e.delay) if e.delay else "", fmt.tokens(toks) if toks else "",
            fmt.money(e.cost_usd) if e.cost_usd else "", fmt.one_line(e.message, 200))
    return table


class DetailScreen(Screen[None]):
    """Full-screen so long outputs get the whole terminal; esc goes back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="detail-back", tooltip="Back to the table"),
        Binding("ctrl+r", "reload", "Reload", id="detail-reload", tooltip="Read the item again"),
        Binding("j,down", "scroll(1)", "Down", id="detail-down", show=False),
        Binding("k,up", "scroll(-1)", "Up", id="detail-up", show=False),
    ]

    def __init__(self, row: Row, events: list[Event]) -> None:
        super().__init__(id="detail")
        self.row = row
        self.events = events

    def compose(self) -> ComposeResult:
        row = self.row
        sym = fmt.SYMBOL.get(row.state, "?")
        cost = fmt.money(row.cost_usd) if row.price_known else "price unknown"
        lat = ""
        if row.started_at is not None and row.finished_at is not None:
            lat = f"  latency {fmt.duration(row.finished_at - row.started_at)}"
        head = Text.assemble(
            (f"{sym} {row.state}", fmt.COLOR.get(row.state, "")), f"  {row.key}",
            f"\nattempts {row.attempts}  tokens in {row.tokens_in:,} out {row.tokens_out:,}"
            f" think {row.tokens_thought:,}  cost {cost}{lat}",
            f"\nrun id {row.run_id or '-'}  target {row.run_target or row.agent or row.model or '-'}")
        with VerticalScroll(id="detail-body"):
            yield Static(head, id="detail-head")
            if row.err_message or row.err_code:
                yield Static("error", classes="section")
                err = f"{row.err_class or 'error'}"
                err += f" (HTTP {row.err_code})" if row.err_code else ""
                yield Static(Text(f"{err}: {row.err_message or ''}", style="red"), id="detail-error")
            yield Static("input", classes="section")
            yield Static(Text(pretty_input(row)), id="detail-input")
            yield Static("output", classes="section")
            yield Markdown(self._output_markdown(), id="detail-output")
            yield Static("attempt history", classes="section")
            yield Static(history_table(self.events), id="detail-history")
        yield Footer()

    def _output_markdown(self) -> str:
        out = self.row.output
        if not out:
            return "*no output yet*"
        try:
            data = json.loads(out)
        except ValueError:
            return out
        if isinstance(data, str):
            return data
        return "```json\n" + json.dumps(data, indent=2, ensure_ascii=False) + "\n```"

    def action_scroll(self, delta: int) -> None:
        self.query_one("#detail-body", VerticalScroll).scroll_relative(y=delta, animate=False)

    async def action_reload(self) -> None:
        store = getattr(self.app, "store", None)
        if store is None:
            return
        row = await store.get(self.row.seq)
        if row is not None:
            self.row = row
            self.events = await store.events(seq=row.seq, limit=500)
            await self.recompose()
