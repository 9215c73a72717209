"""How states, money, tokens and durations read on screen: one place, so every pane agrees.

Each state has a symbol as well as a color, so the table still reads with NO_COLOR or on
a 16-color terminal over SSH.
"""

from __future__ import annotations

import time

STATES = ("pending", "claimed", "running", "done", "failed", "skipped")

SYMBOL = {
    "pending": "·",
    "claimed": "◔",
    "running": "▶",
    "done": "✓",
    "failed": "✗",
    "skipped": "–",
}

#: ANSI-16 names so the colors survive a 16-color terminal.
COLOR = {
    "pending": "bright_black",
    "claimed": "blue",
    "running": "yellow",
    "done": "green",
    "failed": "red",
    "skipped": "bright_black",
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


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def one_line(text: str | None, width: int = 0) -> str:
    """First line of an error, whitespace squeezed, cut to width with an ellipsis."""
    if not text:
        return ""
    s = " ".join(text.split())
    if width and len(s) > width:
        return s[: max(0, width - 1)] + "…"
    return s


def bar(fraction: float, width: int) -> str:
    """A progress bar drawn with block characters (readable without color)."""
    fraction = min(1.0, max(0.0, fraction))
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)
