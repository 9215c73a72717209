"""Text from the service or the items file is data: make it safe to show on a terminal.

Stored data stays exact; only what is displayed (the app, headless lines, the worker
log) goes through :func:`visible`, so an escape sequence in an error message or a key
can never set the window title, write the clipboard (OSC 52) or forge a line.
"""

from __future__ import annotations

import re

# C0 controls except none (newline and tab included: one record is one line), DEL, C1 controls,
# and the Unicode line/paragraph separators and bidi overrides that reorder what is shown.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\x1b": "␛", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _show(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def visible(text: object) -> str:
    """*text* with every control character made visible (``\\x1b`` → ``␛``, newline → ``\\n``)."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_show, s) if _UNSAFE.search(s) else s


def visible_block(text: object) -> str:
    """Like :func:`visible` but keeps newlines and tabs, for multi-line views (the detail pane)."""
    s = text if isinstance(text, str) else str(text)
    return "\n".join(visible(line.replace("\t", "    ")) for line in s.split("\n"))
