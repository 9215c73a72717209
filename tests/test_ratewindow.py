"""The one sliding window (simulator quotas, pacer): explicit times only, no clock is read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuibatch.ratewindow import SlidingWindow


def window(events: list[tuple[float, float]], span: float = 60.0) -> SlidingWindow:
    w = SlidingWindow(span)
    for t, weight in events:
        w.add(t, weight)
    return w


@pytest.mark.parametrize("span", [0.0, -1.0])
def test_the_span_must_be_positive(span: float) -> None:
    with pytest.raises(ValueError, match="span"):
        SlidingWindow(span)


def test_used_counts_the_weight_inside_the_span() -> None:
    w = window([(0.0, 1.0), (10.0, 2.0), (20.0, 4.0)])
    assert w.used(20.0) == 7.0
    assert w.used(59.999) == 7.0
    # an event leaves the window exactly one span after it happened
    assert w.used(60.0) == 6.0
    assert w.used(70.0) == 4.0
    assert w.used(80.0) == 0.0


def test_an_empty_window_sums_to_exactly_zero_after_any_amount_of_float_traffic() -> None:
    w = SlidingWindow(1.0)
    for i in range(1000):
        w.add(i * 0.01, 0.1)
    assert w.used(100.0) == 0.0
    w.add(100.0, 0.3)
    assert w.used(100.0) == 0.3


def test_used_since_looks_back_only_so_far() -> None:
    w = window([(0.0, 1.0), (10.0, 2.0), (20.0, 4.0)])
    assert w.used_since(25.0, 10.0) == 4.0
    assert w.used_since(25.0, 15.0) == 4.0  # exactly 15 s old is out, as in used()
    assert w.used_since(25.0, 15.001) == 6.0
    assert w.used_since(25.0, 16.0) == 6.0
    assert w.used_since(25.0, 30.0) == 7.0
    # never further back than the span, whatever is asked
    assert w.used_since(65.0, 1000.0) == 6.0


def test_times_lists_the_events_inside_the_window_oldest_first() -> None:
    w = window([(0.0, 1.0), (10.0, 1.0), (20.0, 1.0)])
    assert w.times(30.0) == [0.0, 10.0, 20.0]
    assert w.times(65.0) == [10.0, 20.0]
    assert w.times(200.0) == []


def test_wait_for_is_zero_while_the_weight_fits() -> None:
    w = window([(0.0, 1.0), (10.0, 1.0)])
    assert w.wait_for(10.0, 1.0, 3.0) == 0.0
    assert w.wait_for(10.0, 1.0, 2.0) == 50.0  # until the event at 0 ages out
    assert SlidingWindow().wait_for(0.0, 5.0, 5.0) == 0.0


def test_wait_for_waits_until_enough_weight_has_aged_out() -> None:
    w = window([(0.0, 1.0), (10.0, 1.0), (20.0, 1.0)])
    assert w.wait_for(30.0, 1.0, 3.0) == 30.0  # the event at 0 must go: at 60
    assert w.wait_for(30.0, 2.0, 3.0) == 40.0  # the events at 0 and 10 must go: at 70
    # waiting that long really makes room
    assert w.wait_for(70.0, 2.0, 3.0) == 0.0


def test_wait_for_with_token_weights() -> None:
    w = window([(0.0, 600.0), (5.0, 300.0), (30.0, 100.0)])
    assert w.wait_for(40.0, 50.0, 1000.0) == 60.0 - 40.0  # 600 must go first, though 50 is small
    assert w.wait_for(61.0, 50.0, 1000.0) == 0.0
    assert w.wait_for(61.0, 700.0, 1000.0) == 65.0 - 61.0


def test_a_weight_over_the_limit_fits_once_the_window_is_empty() -> None:
    w = window([(0.0, 1.0), (10.0, 1.0)])
    # refusing it forever would hang the caller: it waits for the window to empty instead
    assert w.wait_for(15.0, 50.0, 5.0) == 70.0 - 15.0
    assert w.wait_for(70.0, 50.0, 5.0) == 0.0
    assert SlidingWindow().wait_for(0.0, 50.0, 5.0) == 0.0


def test_add_trims_what_has_aged_out() -> None:
    w = window([(0.0, 5.0), (1.0, 5.0)], span=10.0)
    w.add(30.0, 1.0)
    assert w.times(30.0) == [30.0]
    assert w.used(30.0) == 1.0


@given(
    events=st.lists(st.tuples(st.floats(0.0, 20.0), st.integers(1, 5)), max_size=40),
    ask=st.integers(1, 12),
    limit=st.integers(1, 10),
    later=st.floats(0.0, 30.0),
)
def test_wait_for_is_the_shortest_wait_after_which_the_weight_fits(
    events: list[tuple[float, int]], ask: int, limit: int, later: float
) -> None:
    w = SlidingWindow(60.0)
    now = 0.0
    for gap, weight in events:
        now += gap
        if w.wait_for(now, weight, limit) == 0.0:
            w.add(now, weight)
        # a caller that always asks first never overflows (but for one oversized weight alone)
        assert w.used(now) <= limit or len(w.times(now)) == 1
    now += later
    wait = w.wait_for(now, ask, limit)
    assert wait >= 0.0
    fits = min(ask, limit)
    if wait > 0:
        # not a moment shorter would have done (asked first: the window forgets as time passes)
        assert w.used(now + wait - 1e-6) + fits > limit
    # … and after it, the weight fits (to float rounding of now + wait)
    assert w.used(now + wait + 1e-9) + fits <= limit
