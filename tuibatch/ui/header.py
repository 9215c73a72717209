"""Header and cost meter: progress, per-state counts (which are also filters), rate, pause state.

Both are plain Statics re-rendered from one :class:`Snapshot`, so a burst of events costs one
redraw per poll, not one per event.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from . import fmt
from .data import Snapshot


def _esc(text: str) -> str:
    return text.replace("[", "\\[")


def rate_per_min(s: Snapshot) -> float | None:
    if s.window < 5 or s.finished_recent == 0:
        return None
    return s.finished_recent / s.window * 60


def pause_text(control: dict[str, str], now: float) -> str:
    """"paused: budget reached", "backing off 12 s: 429 …", or "" when claiming freely."""
    if control.get("paused") == "1":
        return "paused: " + (control.get("pause_reason") or "by user")
    try:
        until = float(control.get("hold_until_wall", "0") or 0)
    except ValueError:
        until = 0.0
    if until > now:
        reason = fmt.one_line(control.get("hold_reason", ""), 44)
        return f"backing off {until - now:.0f} s" + (f": {reason}" if reason else "")
    return ""


class BatchHeader(Static):
    """Three lines: title + progress, state counts, status (pause / back-off / worker)."""

    def show(self, s: Snapshot, *, title: str, now: float, state_filter: str | None,
             worker: str, width: int) -> None:
        t = s.totals
        done = t.counts.get("done", 0)
        total = t.total
        pct = done / total if total else 0.0
        rate = rate_per_min(s)
        left = sum(t.counts.get(k, 0) for k in ("pending", "claimed", "running"))
        eta = fmt.duration(left / rate * 60) if rate and left else ("-" if left else "finished")
        rate_txt = f"{rate:.1f}/min" if rate else "-/min"
        tail = f" {done}/{total} {pct:4.0%}  {rate_txt}  ETA {eta}"
        title = fmt.one_line(title, 24)
        bar_w = max(5, width - len(title) - len(tail) - 4)
        line1 = (f"[b]{_esc(title)}[/b] [$success]{fmt.bar(pct, bar_w)}[/]"
                 f"{_esc(tail)}")
        parts = []
        for i, state in enumerate(fmt.STATES, start=1):
            n = t.counts.get(state, 0)
            color = fmt.COLOR[state]
            label = f"{i}{fmt.SYMBOL[state]}{state} {n}"
            style = f"{color} reverse" if state_filter == state else color
            parts.append(f"[@click=app.show_state('{state}')][{style}]{_esc(label)}[/][/]")
        all_style = "reverse" if state_filter is None else ""
        parts.append(f"[@click=app.show_state('')][{all_style or 'default'}]0 all[/][/]")
        line2 = " ".join(parts)
        status = pause_text(s.control, now)
        line3 = (f"[b $warning]{_esc(status)}[/]" if status else "[$success]claiming[/]")
        line3 += f"  {_esc(worker)}" if worker else ""
        self.update(Content.from_markup("\n".join((line1, line2, line3))))


class CostMeter(Static):
    """Tokens, spent, wasted, projected total, budget bar and the price-unknown count."""

    def show(self, s: Snapshot, *, budget: float | None, width: int) -> None:
        t = s.totals
        finished_paid = t.counts.get("done", 0) + t.counts.get("failed", 0)
        left = sum(t.counts.get(k, 0) for k in ("pending", "claimed", "running"))
        projected = t.cost_usd + (t.cost_usd / finished_paid * left if finished_paid else 0.0)
        toks = (f"in {fmt.tokens(t.tokens_in)} out {fmt.tokens(t.tokens_out)}"
                f" think {fmt.tokens(t.tokens_thought)}")
        line1 = (f"{'tokens' if width >= 90 else 'tok'} {toks} │ {fmt.money(t.cost_usd)} spent"
                 f" │ {fmt.money(t.wasted_usd)} wasted"
                 f" │ {'projected' if width >= 90 else 'proj.'} {fmt.money(projected) if finished_paid else '-'}")
        line2 = ""
        if budget:
            frac = t.cost_usd / budget if budget > 0 else 1.0
            style = "$error" if frac >= 1 else ("$warning" if frac >= 0.8 else "$success")
            bw = max(5, min(30, width - 60))
            line2 = (f"budget [{style}]{fmt.bar(frac, bw)}[/] {fmt.money(t.cost_usd)} of"
                     f" {fmt.money(budget)} ({frac:.0%})")
        if t.unpriced:
            unknown = f"[b $warning]{t.unpriced} price unknown[/]"
            line2 = f"{line2}  {unknown}" if line2 else unknown
        markup = _esc(line1) + ("\n" + line2 if line2 else "")
        self.update(Content.from_markup(markup))
