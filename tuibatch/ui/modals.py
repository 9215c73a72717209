"""Confirmation dialogs: every destructive action and quitting with runs in flight ask first.

Keyboard-only answers (y/n, s/d/esc) so they work over SSH without a mouse. Questions may
quote a key or a path: shown visible and never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..safe_text import visible


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no; dismisses with True only on an explicit yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__(id="confirm")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(visible(self.question), classes="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button("Cancel (n/esc)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class QuitScreen(ModalScreen[str]):
    """Quit while our worker still runs: stop it, leave it running (detach), or stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "answer('stop')", "Stop worker", id="quit-stop"),
        Binding("d", "answer('detach')", "Detach", id="quit-detach"),
        Binding("escape,c", "answer('stay')", "Stay", id="quit-stay"),
    ]

    def __init__(self, in_flight: int, db: str) -> None:
        super().__init__(id="quit")
        self.in_flight = in_flight
        self.db = db

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                f"The worker is still running ({self.in_flight} run(s) in flight).\n\n"
                "s  stop it: no new launches, run ids are kept, runs resume next time\n"
                f"d  detach: leave it running; `tuibatch watch --db {visible(self.db)}` re-attaches\n"
                "esc  stay here",
                classes="question",
                markup=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Stop (s)", id="stop", variant="error")
                yield Button("Detach (d)", id="detach", variant="primary")
                yield Button("Stay (esc)", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_answer(self, value: str) -> None:
        self.dismiss(value)


class AttachScreen(ModalScreen[str]):
    """A worker already runs this checkpoint: watch it (default), start another, or quit."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a,enter", "answer('attach')", "Attach", id="attach-attach"),
        Binding("s", "answer('start')", "Start another", id="attach-start"),
        Binding("q,escape", "answer('quit')", "Quit", id="attach-quit"),
    ]

    def __init__(self, workers: str, db: str) -> None:
        super().__init__(id="attach")
        self.who = workers
        self.db = db

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                f"A worker is already running {visible(self.db)}:\n{visible(self.who)}\n\n"
                "a  attach: watch it, start nothing (default)\n"
                "s  start another worker anyway (they share the items and the quota)\n"
                "q  quit",
                classes="question",
                markup=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Attach (a)", id="answer-attach", variant="primary")
                yield Button("Start another (s)", id="answer-start")
                yield Button("Quit (q)", id="answer-quit")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "answer-attach").removeprefix("answer-"))

    def action_answer(self, value: str) -> None:
        self.dismiss(value)
