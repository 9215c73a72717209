"""The ``?`` screen, generated from the live bindings so it can never drift from the keys.

Bindings that share a :class:`~textual.binding.Binding.Group` (the number keys that filter by
state) read as one line: the group's name, then each key with what it does.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def _keys(b: Binding) -> str:
    return b.key_display or " ".join(k.strip() for k in b.key.split(","))


def help_rows(bindings: list[Binding]) -> list[tuple[str, str, str]]:
    """(keys, name, what it does) per binding; one row per binding group; each id once."""
    rows: list[tuple[str, str, str]] = []
    groups: dict[int, int] = {}  # id(group) -> row index
    seen: set[str] = set()
    for b in bindings:
        if b.system or not b.description:
            continue
        ident = b.id or b.action
        if ident in seen:
            continue
        seen.add(ident)
        if b.group is None:
            rows.append((_keys(b), b.description, b.tooltip))
            continue
        what = f"{_keys(b)} {b.description.lower()}"
        at = groups.get(id(b.group))
        if at is None:
            groups[id(b.group)] = len(rows)
            rows.append((_keys(b), b.group.description, what))
        else:
            keys, name, whats = rows[at]
            rows[at] = (f"{keys} {_keys(b)}", name, f"{whats}, {what}")
    return rows


def bindings_table(groups: list[tuple[str, list[Binding]]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("what it does")
    for title, bindings in groups:
        table.add_row(Text(title, style="underline"), "", "")
        for keys, name, what in help_rows(bindings):
            table.add_row(Text(keys), Text(name), Text(what))  # plain text: "[" is a key here
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
