"""The detail view of one item: input, output, error, run id and its attempt history.

Read from the store when opened (``item_head(seq)``: every column, the big texts cut to one
page, with their full lengths; + ``events(seq=…)``) and re-read on ``ctrl+r``. A text longer
than :data:`PAGE` characters is shown one page at a time (``]`` / ``[``), each page read from
the store as a slice (``item_slice``, SQL ``substr``), so a 50 MB payload is never loaded whole:
one page in memory, one page of widgets. Everything
shown is data from the items file or the service: made visible, never parsed as markup.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Static

from ..safe_text import visible, visible_block
from ..states import IN_FLIGHT, ItemState
from ..store import Event, Row
from ..store.jobs import JobRow
from ..store.monitor import HEAD_CHARS, ItemHead
from . import fmt

#: characters of one text (input or output) the view renders at a time
PAGE = HEAD_CHARS
#: ``load(offset, limit) -> text``: one page of a text that stays in the store
PageLoader = Callable[[int, int], Awaitable[str]]


class Paged:
    """One long text shown a page at a time; only the current page is ever rendered.

    With *load*, *text* is the first page and *total* the whole length: other pages are read
    from the store when turned to, so the whole text is never in memory.
    """

    def __init__(
        self,
        text: str,
        page_size: int = PAGE,
        *,
        total: int | None = None,
        load: PageLoader | None = None,
    ) -> None:
        self.text = text
        self.page_size = page_size
        self.page = 0
        self.total = len(text) if total is None else total
        self.load = load
        self._chunk = text[:page_size]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def paged(self) -> bool:
        return self.pages > 1

    async def turn(self, delta: int) -> bool:
        """Move *delta* pages (reading the page from the store if needed); whether it changed."""
        page = max(0, min(self.pages - 1, self.page + delta))
        if page == self.page:
            return False
        start = page * self.page_size
        if self.load is not None:
            self._chunk = await self.load(start, self.page_size)
        else:
            self._chunk = self.text[start : start + self.page_size]
        self.page = page
        return True

    def chunk(self) -> str:
        return self._chunk

    def note(self) -> str:
        """Where this page is in the whole, and how to see the rest ("" when it all fits)."""
        if not self.paged:
            return ""
        start = self.page * self.page_size
        end = min(self.total, start + self.page_size)
        more = self.total - end
        tail = f"… {fmt.size(more)} more characters" if more else "end"
        return (
            f"characters {start:,}–{end:,} of {self.total:,} ({tail}); page"
            f" {self.page + 1}/{self.pages}: ] next, [ previous; `tuibatch export` has it all"
        )


def pretty_input(row: Row) -> str:
    """The payload as indented JSON when it is small enough to pretty-print cheaply."""
    raw = row.payload or row.input
    if len(raw) >= PAGE:
        return raw  # shown page by page as stored; parsing megabytes would stall the screen
    try:
        return json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return raw


def output_markdown(out: str | None) -> str:
    if not out:
        return "*no output yet*"
    try:
        data = json.loads(out)
    except ValueError:
        return visible_block(out)
    if isinstance(data, str):
        return visible_block(data)
    return "```json\n" + visible_block(json.dumps(data, indent=2, ensure_ascii=False)) + "\n```"


def run_line(row: Row) -> str:
    """``run id … target …``, or why there is no run: never a bare "-"."""
    target = row.run_target or row.agent or row.model
    where = f"  target {fmt.key(target, 80)}" if target else ""
    if row.run_id:
        return f"run id {fmt.key(row.run_id, 80)}{where}"
    why = ""
    if row.err_code or row.err_message:
        code = f"HTTP {row.err_code}" if row.err_code else fmt.one_line(row.err_class) or "error"
        msg = row.err_message or ""
        if row.err_code:  # "400: bad document" → "HTTP 400: bad document"
            msg = re.sub(rf"^\s*{row.err_code}\b[:\s]*", "", msg)
        msg = fmt.one_line(msg, 60)
        why = f" ({code}: {msg})" if msg else f" ({code})"
    state = row.state
    if state == ItemState.FAILED:
        return f"no run: failed before launch{why}{where}"
    if state == ItemState.SKIPPED:
        return f"no run: skipped before launch{where}"
    last = f"; last attempt{why}" if why else ""
    if state == ItemState.PENDING:
        return f"no run yet: waiting to be claimed{last}{where}"
    if state == ItemState.CLAIMED:
        return f"no run yet: launching{last}{where}"
    return f"no run recorded{why}{where}"


def job_line(row: Row, job: JobRow | None, now: float) -> str:
    """The Batch API job of the item: ``queued in job 3 (tuibatch-…-0003) · running · 4m05s``
    while it holds the item, ``done through job 3 at the batch rate`` once it delivered."""
    if row.job_id is None:
        return ""
    if job is None:
        return f"job {row.job_id} (not in the checkpoint's jobs)"
    state = visible((job.service_state or "").removeprefix("JOB_STATE_").lower())
    state = state or ("creating" if job.state == "planned" else visible(job.state))
    name = fmt.key(job.name or job.display_name, 80)
    if row.state in IN_FLIGHT:
        since = job.submitted_at or job.created_at
        age = fmt.duration(max(0.0, now - since))
        return (
            f"queued in job {job.id} ({name}) · {state} · {age}, recorded {fmt.clock(job.created_at)}"
            f"\nskip ignores its result when the job delivers it (a job is cancelled only whole:"
            f" tuibatch cancel-job {job.id})"
        )
    if row.state == ItemState.DONE:
        return f"done through job {job.id} ({name}, {state}) at the batch rate"
    return f"{fmt.one_line(row.state)} in job {job.id} ({name}, {state})"


def lost_line(row: Row) -> str:
    """What a lost item is and what ``retry`` does with it."""
    paid = fmt.money(row.cost_usd) if row.price_known else "an unknown amount"
    return (
        "lost: the service no longer knows this run (another key or project, or it expired)."
        f" r (retry) relaunches it: a new, paid run; the {paid} paid so far stays counted."
    )


def history_table(events: list[Event]) -> Table:
    """Attempts and state changes: time, outcome, HTTP code, delay, tokens, cost."""
    table = Table(box=None, header_style="bold", pad_edge=False, expand=True)
    for name, just in (
        ("time", "left"),
        ("#", "right"),
        ("outcome", "left"),
        ("http", "right"),
        ("delay", "right"),
        ("tokens", "right"),
        ("cost", "right"),
        ("message", "left"),
    ):
        table.add_column(name, justify=just, no_wrap=name != "message")  # type: ignore[arg-type]
    for e in events:
        if e.kind == "state":
            if e.state in (ItemState.CLAIMED, ItemState.RUNNING):
                continue
            outcome = Text(
                f"{fmt.SYMBOL.get(e.state or '', '')} {fmt.one_line(e.state)}",
                style=fmt.COLOR.get(e.state or "", ""),
            )
        elif e.kind == "attempt":
            outcome = Text(fmt.one_line(e.outcome))
        else:
            outcome = Text(fmt.one_line(e.kind))
        toks = (e.tokens_in or 0) + (e.tokens_out or 0) + (e.tokens_thought or 0)
        table.add_row(
            fmt.clock(e.t),
            str(e.attempt or ""),
            outcome,
            str(e.http_code or ""),
            fmt.duration(e.delay) if e.delay else "",
            fmt.tokens(toks) if toks else "",
            fmt.money(e.cost_usd) if e.cost_usd else "",
            Text(fmt.one_line(e.message, 200)),
        )
    return table


class DetailScreen(Screen[None]):
    """Full-screen so long outputs get the whole terminal; esc goes back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q", "app.pop_screen", "Back", id="detail-back", tooltip="Back to the table"
        ),
        Binding("ctrl+r", "reload", "Reload", id="detail-reload", tooltip="Read the item again"),
        Binding(
            "right_square_bracket",
            "page(1)",
            "Next page",
            id="detail-next",
            key_display="]",
            tooltip="Next page of a long input or output",
        ),
        Binding(
            "left_square_bracket",
            "page(-1)",
            "Prev page",
            id="detail-prev",
            key_display="[",
            tooltip="Previous page of a long input or output",
        ),
        Binding("j,down", "scroll(1)", "Down", id="detail-down", show=False, tooltip="Scroll down"),
        Binding("k,up", "scroll(-1)", "Up", id="detail-up", show=False, tooltip="Scroll up"),
    ]

    def __init__(
        self,
        item: Row | ItemHead,
        events: list[Event],
        job: JobRow | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(id="detail")
        self.clock = clock
        self.job = job
        self._set(item if isinstance(item, ItemHead) else ItemHead(item), events)

    def _loader(self, name: str) -> PageLoader:
        seq = self.row.seq

        async def load(offset: int, limit: int) -> str:
            store = getattr(self.app, "store", None)
            if store is None:
                return ""
            text, _total = await store.item_slice(seq, name, offset, limit)
            return str(text)

        return load

    def _set(self, head: ItemHead, events: list[Event]) -> None:
        row = self.row = head.row
        self.events = events
        name = "payload" if row.payload else "input"
        if head.cut(name):
            self.input_pages = Paged(
                row.payload or row.input, total=head.sizes[name], load=self._loader(name)
            )
        else:
            self.input_pages = Paged(pretty_input(row))
        if head.cut("output"):
            self.output_pages = Paged(
                row.output or "", total=head.sizes["output"], load=self._loader("output")
            )
        else:
            self.output_pages = Paged(row.output or "")

    def compose(self) -> ComposeResult:
        row = self.row
        sym = fmt.SYMBOL.get(row.state, "?")
        cost = fmt.money(row.cost_usd) if row.price_known else "price unknown"
        lat = ""
        if row.started_at is not None and row.finished_at is not None:
            lat = f"  latency {fmt.duration(row.finished_at - row.started_at)}"
        head = Text.assemble(
            (f"{sym} {fmt.one_line(row.state)}", fmt.COLOR.get(row.state, "")),
            f"  {fmt.key(row.key, 400)}",
            f"\nattempts {row.attempts}  tokens in {row.tokens_in:,} out {row.tokens_out:,}"
            f" think {row.tokens_thought:,}  cost {cost}{lat}",
            f"\n{run_line(row)}",
        )
        if row.job_id is not None:
            head.append(
                f"\n{job_line(row, self.job, self.clock())}", style=fmt.COLOR[ItemState.CLAIMED]
            )
        if row.state == ItemState.LOST:
            head.append(f"\n{lost_line(row)}", style=fmt.COLOR[ItemState.LOST])
        with VerticalScroll(id="detail-body"):
            yield Static(head, id="detail-head")
            if row.err_message or row.err_code:
                yield Static("error", classes="section")
                err = fmt.one_line(row.err_class) or "error"
                err += f" (HTTP {row.err_code})" if row.err_code else ""
                text = visible_block((row.err_message or "")[:PAGE])
                yield Static(Text(f"{err}: {text}", style="red"), id="detail-error")
            yield Static("input", classes="section")
            yield Static(
                Text(self.input_pages.note(), style="italic"),
                id="detail-input-note",
                classes="pager",
            )
            yield Static(Text(visible_block(self.input_pages.chunk())), id="detail-input")
            yield Static("output", classes="section")
            yield Static(
                Text(self.output_pages.note(), style="italic"),
                id="detail-output-note",
                classes="pager",
            )
            if self.output_pages.paged:
                yield Static(Text(visible_block(self.output_pages.chunk())), id="detail-output")
            else:
                yield Markdown(output_markdown(row.output), id="detail-output", open_links=False)
            yield Static("attempt history", classes="section")
            yield Static(history_table(self.events), id="detail-history")
        yield Footer()

    def on_mount(self) -> None:
        self._show_pager_notes()

    def _show_pager_notes(self) -> None:
        for name, paged in (("input", self.input_pages), ("output", self.output_pages)):
            note = self.query_one(f"#detail-{name}-note", Static)
            note.display = paged.paged
            note.update(Text(paged.note(), style="italic"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "page":
            return self.input_pages.paged or self.output_pages.paged
        return True

    async def action_page(self, delta: int) -> None:
        for name, paged in (("input", self.input_pages), ("output", self.output_pages)):
            if await paged.turn(delta):
                self.query_one(f"#detail-{name}", Static).update(Text(visible_block(paged.chunk())))
        self._show_pager_notes()

    def action_scroll(self, delta: int) -> None:
        self.query_one("#detail-body", VerticalScroll).scroll_relative(y=delta, animate=False)

    async def action_reload(self) -> None:
        store = getattr(self.app, "store", None)
        if store is None:
            return
        head = await store.item_head(self.row.seq)
        if head is not None:
            job_id = head.row.job_id
            self.job = await store.job(job_id) if job_id is not None else None
            self._set(head, await store.events(seq=head.row.seq, limit=500))
            await self.recompose()
            self._show_pager_notes()
            self.refresh_bindings()
