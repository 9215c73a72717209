"""The pace pane: launches, completions and 429s per minute over the last minutes, as curves.

The window is the last 10 minutes, or the run so far when it is younger (at least a minute),
in 20 buckets; each value is a rate per minute, so a young run's curve has a shape too.

Three Textual Sparklines read from one :class:`~tuibatch.store.monitor.Pace` (counts per minute
bucket of the events table), next to the rate the batch is held to: the told ``--rpm`` or the
rate the pacer learned, when the checkpoint holds either. Toggled with ``t``.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from ..store.monitor import Pace
from . import fmt

#: buckets per curve, and the longest window they cover (seconds)
BUCKETS = 20
SPAN = 600.0

#: (id, label) of each curve, top to bottom
CURVES = (("launches", "launches/min"), ("done", "done/min"), ("limited", "429s/min"))


def window(now: float, first_start: float | None) -> float:
    """Seconds of one bucket: the run so far (≥ 1 min, ≤ 10 min) in :data:`BUCKETS` parts."""
    age = now - first_start if first_start is not None else SPAN
    return min(SPAN, max(60.0, age)) / BUCKETS


def rate_text(control: dict[str, str], meta: dict[str, str]) -> str:
    """``told 120/min``, ``learned 84/min`` or ``no rate limit told``."""
    pacer = fmt.one_line(control.get("pace_source") or "learned", 10)  # the pacer's told/learned
    for source, key, word in (
        (control, "pace_rate", pacer),
        (control, "rpm", "told"),
        (meta, "rpm", "told"),
    ):
        try:
            value = float(source.get(key, "") or "nan")
        except ValueError:
            continue
        if value == value and value > 0:
            return f"{word} {value:.0f}/min"
    return "no rate told"


class PacePane(Vertical):
    """One line per curve: label, sparkline over the window, the last minute's count."""

    DEFAULT_CSS = """
    PacePane { height: 3; display: none; padding: 0 1; }
    PacePane.visible { display: block; }
    PacePane Horizontal { height: 1; }
    PacePane .pace-label { width: 14; color: $text-muted; }
    PacePane Sparkline { width: 1fr; height: 1; }
    PacePane .pace-now { width: 40; padding-left: 1; }
    PacePane #pace-limited-line > .sparkline--max-color { color: $error; }
    PacePane #pace-limited-line > .sparkline--min-color { color: $error 40%; }
    """

    def compose(self) -> ComposeResult:
        for name, label in CURVES:
            with Horizontal():
                yield Static(label, classes="pace-label", markup=False)
                yield Sparkline([0, 0], id=f"pace-{name}-line")
                yield Static("", id=f"pace-{name}-now", classes="pace-now", markup=False)

    def show(self, pace: Pace, rate: str) -> None:
        for name, _label in CURVES:
            values = pace.per_min(getattr(pace, name))
            line = self.query_one(f"#pace-{name}-line", Sparkline)
            line.data = values or [0.0, 0.0]
            last = values[-1] if values else 0.0
            peak = max(values) if values else 0.0
            text = f"{last:.0f} now · peak {peak:.0f}"
            if name == "launches":
                text += f" · {rate}"
            elif name == "done" and pace.buckets:
                text += f" · last {fmt.duration(pace.span)}"
            self.query_one(f"#pace-{name}-now", Static).update(fmt.one_line(text, 39))
