"""The cost meter's detail (``w``): what was spent, what was wasted and why, what failed and why.

Wasted spend is grouped by cause (billed transient retries, in-doubt relaunches, invalid or
truncated outputs, cancelled and lost runs) and failures likewise, each with its count and one
example, so the screen says what to fix. Read from the store's monitor views when opened;
every key and message shown is data: made visible, never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..store import Totals
from ..store.monitor import CauseLine
from . import fmt


def causes_table(lines: list[CauseLine], *, money: bool) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, expand=True)
    table.add_column("cause", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    if money:
        table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("example", ratio=1)
    for c in lines:
        example = fmt.key(c.example_key, 40) if c.example_key else ""
        if c.example:
            example += (": " if example else "") + fmt.one_line(c.example, 160)
        cells = [fmt.one_line(c.cause, 28), str(c.count)]
        if money:
            cells.append(fmt.money(c.cost_usd))
        table.add_row(*cells, Text(example))
    return table


def summary(totals: Totals, waste: list[CauseLine], failures: list[CauseLine]) -> Group:
    spent = fmt.money(totals.cost_usd)
    wasted = fmt.money(totals.wasted_usd)
    share = f" ({totals.wasted_usd / totals.cost_usd:.0%} of spend)" if totals.cost_usd else ""
    head = Text.assemble(
        ("spent ", "bold"),
        spent,
        ("   wasted ", "bold"),
        (wasted + share, "yellow" if totals.wasted_usd else ""),
        f"   tokens in {fmt.tokens(totals.tokens_in)} out {fmt.tokens(totals.tokens_out)}"
        f" think {fmt.tokens(totals.tokens_thought)}",
    )
    if totals.unpriced:
        head.append(f"   {totals.unpriced} price unknown", "bold yellow")
    parts: list[object] = [head, Text("")]
    parts.append(Text("wasted spend by cause", style="bold underline"))
    parts.append(causes_table(waste, money=True) if waste else Text("nothing wasted", "dim"))
    parts.append(Text(""))
    n = sum(c.count for c in failures)
    parts.append(Text(f"failures by cause ({n})", style="bold underline"))
    parts.append(causes_table(failures, money=False) if failures else Text("no failures", "dim"))
    return Group(*parts)  # type: ignore[arg-type]


class WasteScreen(Screen[None]):
    """Full screen, like the detail view; esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,w", "app.pop_screen", "Back", id="waste-back", tooltip="Back"),
    ]

    def __init__(self, totals: Totals, waste: list[CauseLine], failures: list[CauseLine]) -> None:
        super().__init__(id="waste")
        self.totals = totals
        self.waste = waste
        self.failures = failures

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="waste-body"):
            yield Static(summary(self.totals, self.waste, self.failures), id="waste-summary")
        yield Footer()
