"""The ``?`` screen, generated from the live bindings so it can never drift from the keys."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def bindings_table(groups: list[tuple[str, list[Binding]]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("what it does")
    for title, bindings in groups:
        table.add_row(f"[u]{title}[/u]", "", "")
        seen: set[str] = set()
        for b in bindings:
            if b.system or not b.description:
                continue
            ident = b.id or b.action
            if ident in seen:
                continue
            seen.add(ident)
            keys = " ".join(k.strip() for k in b.key.split(","))
            table.add_row(b.key_display or keys, b.description, b.tooltip)
        table.add_row("", "", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Every key of the main screen and the table, with the binding's tooltip as explanation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help-close"),
    ]

    def __init__(self, groups: list[tuple[str, list[Binding]]]) -> None:
        super().__init__(id="help")
        self.groups = groups

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Static("[b]tuibatch keys[/b]  (esc closes)", classes="title")
            yield Static(bindings_table(self.groups), id="help-table")
