"""The pacer's windows with an injected clock: the in-process window and the shared pace table."""

from __future__ import annotations

import sqlite3

import pytest

from tuibatch.limiter import Window
from tuibatch.limiter.shared import CREATE, take


def test_window_caps_the_span_and_bursts() -> None:
    w = Window(limit=24, span=61.0)  # burst cap: 24 / 12 * 1.25 = 2.5 in any 5 s
    assert w.delay(100.0) == 0.0
    w.take(100.0)
    w.take(101.0)
    # a third within 5 s would exceed 2.5: wait until the oldest is 5 s old
    assert w.delay(102.0) == pytest.approx(3.0)
    assert w.delay(105.5) == 0.0
    for t in range(106, 128):  # 22 more, spread out: 24 in the span
        w.take(float(t) + 0.5 * (t % 2))
    assert w.count(130.0) == 24
    # the span is full until the oldest (t=100) leaves it at 161
    assert w.delay(130.0) == pytest.approx(31.0)
    assert w.count(160.5, span=60.0) == 23  # the one at t=100 is older than 60 s


def test_a_learned_window_starts_with_what_was_sent() -> None:
    sent = Window()
    for t in range(10):
        sent.take(float(t))
    learned = Window(limit=10).learned_from(sent, 9.5)
    assert learned.count(9.5) == 10 and learned.delay(9.5) == pytest.approx(61.0 - 9.5)
    assert Window().delay(0.0) == 0.0  # no limit: never waits


def _con() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:", isolation_level=None)
    for stmt in CREATE:
        con.execute(stmt)
    return con


def test_shared_pace_counts_requests_and_tokens_over_sliding_windows() -> None:
    con = _con()
    limits = [(60.0, 3, 1000)]
    assert take(con, 0.0, 1, 100, limits) == 0.0
    assert take(con, 1.0, 1, 100, limits) == 0.0
    assert take(con, 2.0, 1, 100, limits) == 0.0
    # the fourth request waits for the first to leave the window
    assert take(con, 3.0, 1, 100, limits) == pytest.approx(57.0)
    assert take(con, 60.5, 1, 100, limits) == 0.0
    # tokens: 300 used in [1, 61], 900 more would make 1200; 200 must leave first, which the
    # entries of t=1 and t=2 (100 each) do when t=2 ages out, at 62
    assert take(con, 61.0, 0, 900, [(60.0, 0, 1000)]) == pytest.approx(1.0)
    # a request bigger than the whole quota fits once the window is empty
    assert take(con, 200.0, 1, 5000, [(60.0, 0, 1000)]) == 0.0
    rows = con.execute("SELECT count(*) FROM pace").fetchone()[0]
    assert rows == 1, "rows older than the longest window are dropped"
