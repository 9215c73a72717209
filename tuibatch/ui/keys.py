"""Every key of the main screen, in one list: the footer, the ``?`` screen and the command
palette are all generated from it, so none of them can drift from what a key does."""

from __future__ import annotations

from textual.binding import Binding, BindingType

from . import fmt

#: the number keys that filter by state: one line in the help
STATE_KEYS = Binding.Group("State filter")


APP_BINDINGS: list[BindingType] = [
    Binding(
        "p",
        "toggle_pause",
        "Pause/Resume",
        id="pause",
        tooltip="Stop claiming new items (runs in flight finish); again: resume",
    ),
    Binding(
        "s",
        "skip",
        "Skip",
        id="skip",
        tooltip="Skip the selected (or tagged) items; a running one is cancelled on the service",
    ),
    Binding(
        "r",
        "retry",
        "Retry",
        id="retry",
        tooltip="Selected (or tagged) failed/skipped items back to pending",
    ),
    Binding(
        "R",
        "retry_failed",
        "Retry failed",
        id="retry-failed",
        key_display="R",
        tooltip="Put every failed item back to pending (asks first)",
    ),
    Binding(
        "enter", "detail", "Detail", id="detail", tooltip="Input, output, error and attempt history"
    ),
    Binding(
        "slash",
        "filter",
        "Filter",
        id="filter",
        key_display="/",
        tooltip="Show items whose key or error contains a text (esc clears)",
    ),
    Binding(
        "escape",
        "clear_filter",
        "Clear filter",
        id="clear-filter",
        show=False,
        tooltip="Clear the text filter",
    ),
    *[
        Binding(
            str(i),
            f"show_state('{s}')",
            f"Only {s}",
            id=f"state-{s}",
            show=False,
            tooltip=f"Show only {s} items",
            group=STATE_KEYS,
        )
        for i, s in enumerate(fmt.STATES, start=1)
    ],
    Binding(
        "0",
        "show_state('')",
        "All states",
        id="state-all",
        show=False,
        tooltip="Show every item",
        group=STATE_KEYS,
    ),
    Binding(
        "f",
        "follow",
        "Follow",
        id="follow",
        show=False,
        tooltip="Keep the cursor on the running items",
    ),
    Binding(
        "l",
        "narrow_log",
        "Item log",
        id="log",
        show=False,
        tooltip="Narrow the log pane to the selected item (again: all)",
    ),
    Binding(
        "t",
        "toggle_pace",
        "Pace",
        id="pace",
        show=False,
        tooltip="Show/hide the pace: launches, completions and 429s per minute, and the rate",
    ),
    Binding(
        "w",
        "waste",
        "Waste",
        id="waste",
        show=False,
        tooltip="Cost detail: spend, wasted spend by cause, failures by cause with an example",
    ),
    Binding(
        "J",
        "jobs",
        "Jobs",
        id="jobs",
        show=False,
        tooltip="Gemini Batch API jobs (--mode batch): state, items, times, cost",
    ),
    Binding(
        "question_mark", "help", "Help", id="help", key_display="?", tooltip="This list of keys"
    ),
    Binding(
        "q",
        "quit_app",
        "Quit",
        id="quit",
        tooltip="Quit; with our worker still running: stop it, detach, or stay",
    ),
]

#: the palette's own key, listed in the help with the rest
PALETTE = Binding(
    "ctrl+p", "command_palette", "Commands", tooltip="Command palette: every action by name"
)


def bindings_of(items: list[BindingType]) -> list[Binding]:
    return [b for b in items if isinstance(b, Binding)]


def palette_entries(paused: bool) -> list[tuple[str, str, str]]:
    """(name, help, action) for each app key the palette offers; the pause toggle says which."""
    out = []
    for b in bindings_of(APP_BINDINGS):
        if not b.description or b.action in ("help", "clear_filter"):
            continue
        name = b.description
        if b.action == "toggle_pause":
            name = "Resume" if paused else "Pause"
        out.append((name, b.tooltip or name, b.action))
    return out
