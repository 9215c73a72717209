"""The item table: a Line-API ScrollView that only renders (and only reads) the visible rows.

Textual's DataTable builds every row up front (about 12 s for 100k items); here the scroll
range is just a number from ``count(*)`` and each visible line comes from a small row cache
that a windowed ``LIMIT/OFFSET`` query fills around the viewport.

The cursor follows an item, not a row position: with a state filter on, items that change
state come and go around it, so after every reload the cursor is put back on the same item
(by ``seq``), or on its nearest neighbour when the item left the view.

The last column (:mod:`.preview`) says the latest about an item in one line: a done item's
result (its JSON answer compacted, from a bounded prefix the store reads), ``queued in job N
· state · age`` for an item inside a Batch API job, else the last error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..states import UNFINISHED, ItemState
from . import fmt, preview
from .data import TableRow

#: ``loader(offset, limit) -> (total rows in view, rows from offset)``
Loader = Callable[[int, int], Awaitable[tuple[int, list[TableRow]]]]
#: ``locate(seq) -> index`` of the item in the view, or of the first item after it if it left
Locator = Callable[[int], Awaitable[int]]


class ItemTable(ScrollView, can_focus=True):
    """Virtual table of items; ``cursor`` is an index into the current (filtered) view and
    ``cursor_seq`` the item it is on, which reloads keep it on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor(1)", "Down", id="down", show=False, tooltip="Next item"),
        Binding("k,up", "cursor(-1)", "Up", id="up", show=False, tooltip="Previous item"),
        Binding("g,home", "jump(0)", "Top", id="top", show=False, tooltip="First item"),
        Binding("G,end", "jump(-1)", "Bottom", id="bottom", show=False, tooltip="Last item"),
        Binding(
            "pagedown,ctrl+f",
            "page(1)",
            "Page down",
            id="page-down",
            show=False,
            tooltip="One screen down",
        ),
        Binding(
            "pageup,ctrl+b",
            "page(-1)",
            "Page up",
            id="page-up",
            show=False,
            tooltip="One screen up",
        ),
        Binding(
            "space",
            "tag",
            "Tag",
            id="tag",
            show=False,
            tooltip="Tag the item for a bulk skip or retry",
        ),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "itemtable--header",
        "itemtable--cursor",
        "itemtable--tagged",
        "itemtable--dim",
    }

    DEFAULT_CSS = """
    ItemTable { height: 1fr; overflow-x: hidden; }
    """

    class CursorMoved(Message):
        """The highlighted item changed (the app shows its key in the status line)."""

        def __init__(self, row: TableRow | None) -> None:
            super().__init__()
            self.row = row

    def __init__(
        self,
        loader: Loader,
        locate: Locator | None = None,
        *,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.loader = loader
        self.locate = locate
        #: the wall clock a job's age is measured with
        self.clock = clock
        self.total = 0
        self.cursor = 0
        #: the item under the cursor (None: take whichever item is at ``cursor`` after a load)
        self.cursor_seq: int | None = None
        #: completed window reads, for tests and benchmarks that wait for a reload
        self.loads = 0
        self.tagged: set[str] = set()
        self._cache: dict[int, TableRow] = {}
        self._loaded_once = False
        self._pending_reload = False
        self._loading = False

    # ------------------------------------------------------------------ data

    @property
    def rows_visible(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    @property
    def current(self) -> TableRow | None:
        return self._cache.get(self.cursor)

    @property
    def shows_jobs(self) -> bool:
        """Some row read holds an item inside a Batch API job (its state and age move
        without an event, so the app re-reads such a window now and then)."""
        return any(r.job_id is not None for r in self._cache.values())

    @property
    def idle(self) -> bool:
        """No window read in progress or queued."""
        return not self._loading and not self._pending_reload

    def reset_cursor(self) -> None:
        """Back to the first item (a new filter): the next load takes whichever item is there."""
        self.cursor = 0
        self.cursor_seq = None
        self.scroll_to(y=0, animate=False, immediate=True)

    def reload(self) -> None:
        """Re-read the visible window (the checkpoint changed or the filter did)."""
        if self._loading:
            self._pending_reload = True
            return
        self.run_worker(self._load(), group="rows", exclusive=False)

    async def load_now(self) -> None:
        """Read the window and wait for it (used by the app before its first paint)."""
        await self._load()

    async def _load(self) -> None:
        self._loading = True
        try:
            while True:
                self._pending_reload = False
                seq = self.cursor_seq
                top = int(self.scroll_offset.y)
                height = self.rows_visible
                start = max(0, top - height)
                total, rows = await self.loader(start, height * 3)
                index = await self._find(seq, start, rows)
                if index is not None:
                    index = min(index, max(0, total - 1))
                if seq != self.cursor_seq:
                    continue  # the user moved meanwhile: read again for the new item
                if index is not None and index != self.cursor:
                    # keep the item on the same screen line; the rows around it changed
                    shift = index - self.cursor
                    self.cursor = index
                    now_top = int(self.scroll_offset.y)
                    new_top = max(0, min(now_top + shift, max(0, total - height)))
                    if new_top != now_top:
                        self.virtual_size = Size(0, total + 1)
                        self.scroll_to(y=new_top, animate=False, immediate=True)
                        self._pending_reload = True  # the window moved with it
                self._apply(total, start, rows)
                if not self._pending_reload:
                    break
        finally:
            self._loading = False

    async def _find(self, seq: int | None, start: int, rows: list[TableRow]) -> int | None:
        """Where the cursor's item is now: in the window just read, else asked of the store."""
        if seq is None:
            return None
        at = self.cursor - start
        if 0 <= at < len(rows) and rows[at].seq == seq:
            return self.cursor
        for i, r in enumerate(rows):
            if r.seq == seq:
                return start + i
        if self.locate is None:
            return None
        # gone from the window: moved far, or left the filter (then: its nearest neighbour)
        return await self.locate(seq)

    def _apply(self, total: int, start: int, rows: list[TableRow]) -> None:
        before = self.current
        self.total = total
        self._cache = {start + i: r for i, r in enumerate(rows)}
        self.virtual_size = Size(0, total + 1)
        if self.cursor >= total:
            self.cursor = max(0, total - 1)
        self._loaded_once = True
        self.loads += 1
        after = self.current
        if after is not None:
            self.cursor_seq = after.seq
        self.refresh()
        if before != after:
            self.post_message(self.CursorMoved(after))

    def _covered(self) -> bool:
        top = int(self.scroll_offset.y)
        last = min(self.total, top + self.rows_visible) - 1
        return last < top or (top in self._cache and last in self._cache)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if not self._covered():
            self.reload()

    def on_resize(self) -> None:
        self.virtual_size = Size(0, self.total + 1)
        if self._loaded_once and not self._covered():
            self.reload()

    # --------------------------------------------------------------- cursor

    def move_to(self, index: int, *, anchor: float | None = None) -> None:
        """Put the cursor on a row and scroll it into view (``anchor``: fraction from the top)."""
        if self.total == 0:
            return
        index = max(0, min(self.total - 1, index))
        moved = index != self.cursor
        self.cursor = index
        row = self._cache.get(index)
        self.cursor_seq = row.seq if row is not None else None
        top = int(self.scroll_offset.y)
        height = self.rows_visible
        if anchor is not None:
            self.scroll_to(y=max(0, index - int(height * anchor)), animate=False, immediate=True)
        elif index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)
        if not self._covered() or index not in self._cache:
            self.reload()
        self.refresh()
        if moved:
            self.post_message(self.CursorMoved(self.current))

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_jump(self, where: int) -> None:
        self.move_to(self.total - 1 if where < 0 else where)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * self.rows_visible)

    def action_tag(self) -> None:
        row = self.current
        if row is None:
            return
        if row.key in self.tagged:
            self.tagged.discard(row.key)
        else:
            self.tagged.add(row.key)
        self.move_to(self.cursor + 1)
        self.refresh()

    # --------------------------------------------------------------- render

    @staticmethod
    def columns(width: int) -> tuple[int, int]:
        """(key width, result width) for a terminal width: fixed columns first, then the key
        (two fifths of the rest, 8 to 28 cells), then the result / last error column."""
        fixed = 42  # the cells of every column but key and result, separators included
        rest = max(0, width - fixed)
        key = max(8, min(28, rest * 2 // 5))
        return key, max(0, rest - key)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        key_w, err_w = self.columns(width)
        if y == 0:
            result = "result / last error" if err_w >= 24 else "result"
            head = (
                f"  {'':1} {'key':<{key_w}} {'state':<8} {'att':>3} {'tokens':>6} {'cost':>8}"
                f" {'latency':>7} {result:<{err_w}}"
            )
            style = self.get_component_rich_style("itemtable--header")
            return Strip([Segment(head[:width], style)]).extend_cell_length(width, style)
        index = int(self.scroll_offset.y) + y - 1
        base = self.rich_style
        if index >= self.total:
            return Strip.blank(width, base)
        row = self._cache.get(index)
        if row is None:
            dim = self.get_component_rich_style("itemtable--dim")
            return Strip([Segment("  …", dim)]).extend_cell_length(width, dim)
        tagged = row.key in self.tagged
        state_style = Style(
            color=fmt.COLOR.get(row.state, "default"), dim=row.state == ItemState.PENDING
        )
        cost = fmt.money(row.cost_usd) if row.price_known else "?"
        if row.cost_usd == 0 and row.state in UNFINISHED:
            cost = ""
        text, kind = preview.cell(row, self.clock(), err_w)
        lat = fmt.duration(row.latency)
        text_style = {
            "error": Style(color="red") if row.state == ItemState.FAILED else base,
            "job": Style(color=fmt.COLOR[ItemState.CLAIMED]),
        }.get(kind, base)
        segs = [
            Segment("*" if tagged else " ", base),
            Segment(" ", base),
            Segment(fmt.SYMBOL.get(row.state, "?"), state_style),
            Segment(f" {fmt.fit(fmt.key(row.key), key_w)} ", base),
            Segment(fmt.fit(fmt.one_line(row.state), 8), state_style),
            Segment(f" {row.attempts:>3} {fmt.tokens(row.tokens):>6} {cost:>8} {lat:>7} ", base),
            Segment(fmt.fit(text, err_w), text_style),
        ]
        strip = Strip(segs).crop(0, width).extend_cell_length(width, base)
        if tagged:
            strip = strip.apply_style(self.get_component_rich_style("itemtable--tagged"))
        if index == self.cursor:
            cursor = self.get_component_rich_style("itemtable--cursor")
            strip = Strip([Segment(s.text, (s.style or Style()) + cursor) for s in strip])
        return strip
