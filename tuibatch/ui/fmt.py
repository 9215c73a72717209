"""How states, money, tokens and durations read on screen: one place, so every pane agrees.

Each state has a symbol as well as a color, so the table still reads with NO_COLOR or on
a 16-color terminal over SSH. Text from the service or the items file (keys, errors,
messages) is data: every helper here that shows it goes through ``safe_text.visible``.
"""

from __future__ import annotations

import re
import time

from rich.cells import cell_len, set_cell_size

from ..safe_text import visible
from ..states import ITEM_STATES, ExitCode, ItemState

#: in the order the header and the number keys show them
STATES = ITEM_STATES

#: keyed by state (an ``ItemState`` is its string value, so either looks up)
SYMBOL: dict[str, str] = {
    ItemState.PENDING: "·",
    ItemState.CLAIMED: "◔",
    ItemState.RUNNING: "▶",
    ItemState.DONE: "✓",
    ItemState.FAILED: "✗",
    ItemState.SKIPPED: "–",
    ItemState.LOST: "?",
}

#: ANSI-16 names so the colors survive a 16-color terminal.
COLOR: dict[str, str] = {
    ItemState.PENDING: "bright_black",
    ItemState.CLAIMED: "blue",
    ItemState.RUNNING: "yellow",
    ItemState.DONE: "green",
    ItemState.FAILED: "red",
    ItemState.SKIPPED: "bright_black",
    ItemState.LOST: "magenta",
}

#: what a worker's exit status means, as the header and the quit line say it
EXIT_MEANING: dict[int, str] = {
    ExitCode.OK: "all done",
    ExitCode.FAILED: "some failed",
    ExitCode.USAGE: "refused to start",
    ExitCode.PAUSED: "paused",
    ExitCode.STORAGE: "checkpoint not writable",
    ExitCode.INTERRUPTED: "stopped",
}


def money(usd: float | None) -> str:
    if usd is None:
        return "?"
    if usd == 0:
        return "$0"
    if usd < 0.01:
        return f"${usd:.4f}"
    if usd < 100:
        return f"${usd:.2f}"
    return f"${usd:,.0f}"


def tokens(n: int | None) -> str:
    if not n:
        return "0"
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def duration(seconds: float | None) -> str:
    """Short human duration: 850ms, 12.3s, 4m05s, 2h10m."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(seconds), 60)
        return f"{m}m{s:02d}s"
    h, rest = divmod(int(seconds), 3600)
    return f"{h}h{rest // 60:02d}m"


def size(n: int) -> str:
    """A character count as people read sizes: 812, 64.0k, 52.4M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def cut(text: str, width: int) -> str:
    """*text* cut to *width* terminal cells with an ellipsis (0: no limit)."""
    if not width or cell_len(text) <= width:
        return text
    return set_cell_size(text, max(0, width - 1)) + "…"


def fit(text: str, width: int) -> str:
    """*text* cut or padded to exactly *width* cells (table columns)."""
    return set_cell_size(cut(text, width), width)


_SPACES = re.compile(r"[ \t\r\n]+")


def one_line(text: str | None, width: int = 0) -> str:
    """An error or message on one line: whitespace squeezed, controls made visible, then cut."""
    if not text:
        return ""
    return cut(visible(_SPACES.sub(" ", text).strip()), width)


def key(text: str | None, width: int = 0) -> str:
    """An item key: exact but visible (a newline shows as ``\\n``, never as a line break)."""
    return cut(visible(text or ""), width)


def exit_text(code: int) -> str:
    """``exited 0 (all done)``, ``exited 130 (stopped)``, ``killed by signal 9``."""
    if code < 0:
        return f"killed by signal {-code}"
    what = EXIT_MEANING.get(code)
    return f"exited {code}" + (f" ({what})" if what else "")


def bar(fraction: float, width: int) -> str:
    """A progress bar drawn with block characters (readable without color)."""
    fraction = min(1.0, max(0.0, fraction))
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)
