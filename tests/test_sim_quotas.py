"""The simulator's three quota enforcements, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from google import genai
from google.genai import _interactions_errors as ierr
from google.genai import errors, types

from tuibatch.sim import SimConfig, Simulator, add_arguments, config_from_args
from tuibatch.sim.errors import ApiError
from tuibatch.sim.quotas import BucketLimit, FixedLimit, Quotas, SlidingLimit


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def takes(limit: Any, n: int) -> list[float]:
    return [limit.take() for _ in range(n)]


def test_sliding_counts_any_60s_window() -> None:
    clock = Clock()
    limit = SlidingLimit(3, clock=clock)
    for _ in range(3):
        assert limit.take() == 0.0
        clock.advance(10)
    assert limit.take() == pytest.approx(30.0)  # the first one ages out 60 s after it was sent
    clock.advance(29.9)
    assert limit.take() == pytest.approx(0.1)
    clock.advance(0.1)
    assert limit.take() == 0.0
    assert limit.take() == pytest.approx(10.0)  # the second one is still in the window


def test_fixed_windows_are_aligned_to_the_minute() -> None:
    clock = Clock(now=120.0 + 50)  # 50 s into a minute
    limit = FixedLimit(3, clock=clock)
    assert takes(limit, 3) == [0.0, 0.0, 0.0]
    assert limit.take() == pytest.approx(10.0)  # until the next minute starts
    clock.advance(10)  # a new minute: the full allowance again, 10 s after the last burst
    assert takes(limit, 3) == [0.0, 0.0, 0.0]
    assert limit.take() == pytest.approx(60.0)


def test_bucket_allows_only_a_short_burst_then_a_steady_rate() -> None:
    clock = Clock()
    limit = BucketLimit(120, burst=2.0, clock=clock)  # 2 per second, holds 4
    assert takes(limit, 4) == [0.0] * 4
    assert limit.take() == pytest.approx(0.5)
    clock.advance(0.5)
    assert limit.take() == 0.0
    assert limit.take() == pytest.approx(0.5)
    clock.advance(60)  # refills only up to the burst, never a minute's worth
    assert takes(limit, 4) == [0.0] * 4
    assert limit.take() > 0


def test_bucket_never_holds_less_than_one_request() -> None:
    clock = Clock()
    limit = BucketLimit(6, burst=2.0, clock=clock)  # 0.1/s: 2 s would hold 0.2
    assert limit.take() == 0.0
    assert limit.take() == pytest.approx(10.0)
    clock.advance(10)
    assert limit.take() == 0.0


@pytest.mark.parametrize("kind", [SlidingLimit, FixedLimit, BucketLimit])
def test_an_oversized_request_fits_an_idle_limit(kind: Any) -> None:
    clock = Clock()
    limit = kind(100, clock=clock)
    assert limit.take(500) == 0.0  # larger than the limit: let through when nothing else ran
    assert limit.take(1) > 0


@pytest.mark.parametrize("enforcement", ["sliding", "fixed", "bucket"])
def test_polls_count_only_when_configured(enforcement: str) -> None:
    def quotas(polls_count: bool) -> Quotas:
        return Quotas(rpm=120, tpm=None, enforcement=enforcement, polls_count=polls_count,
                      clock=Clock(now=0.0))  # fmt: skip

    def launches_until_429(q: Quotas) -> int:
        for n in range(1000):
            try:
                q.check_request("create" if n % 2 else "generate")
            except ApiError as exc:
                assert exc.code == 429
                return n
        raise AssertionError("never refused")

    allowance = launches_until_429(quotas(True))
    assert allowance == (4 if enforcement == "bucket" else 120)  # a 2 s burst, or a minute
    free = quotas(False)
    for _ in range(3 * allowance):
        free.check_request("get")
        free.check_request("cancel")
    assert launches_until_429(free) == allowance
    counted = quotas(True)
    for _ in range(allowance):
        counted.check_request("get")
    assert launches_until_429(counted) == 0


def test_config_rejects_unknown_enforcement() -> None:
    with pytest.raises(ValueError, match="enforcement must be one of"):
        SimConfig(enforcement="leaky")


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser(prog="tuibatch sim")
    add_arguments(parser)
    config = config_from_args(
        parser.parse_args(["--rpm", "60", "--enforcement", "bucket", "--polls-free",
                           "--invalid-key", "k1", "--invalid-key", "k2"])
    )  # fmt: skip
    assert (config.rpm, config.enforcement, config.polls_count) == (60, "bucket", False)
    assert config.invalid_keys == ["k1", "k2"]
    defaults = config_from_args(parser.parse_args([]))
    assert (defaults.enforcement, defaults.polls_count) == ("sliding", True)
    help_text = parser.format_help()
    for kind in (
        "multi_quota",
        "free_tier",
        "bad_key",
        "cancel_race",
        "error_after_create",
        "run_status",
        "finish",
        "blocked",
        "empty_candidates",
        "html",
        "lost",
    ):
        assert kind in help_text  # fmt: skip


async def test_bucket_over_http_with_an_injected_clock() -> None:
    """The simulator's quotas read the injected clock: a burst of 2 s, then 1 per second."""
    clock = Clock()
    sim = Simulator(SimConfig(rpm=60, enforcement="bucket"), clock=clock)
    await sim.start()
    try:
        options = types.HttpOptions(
            base_url=sim.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=5000
        )
        client = genai.Client(api_key="dummy", http_options=options).aio
        for i in range(2):
            await client.interactions.create(model="sim-model", input=f"x{i}")
        with pytest.raises(ierr.RateLimitError):
            await client.interactions.create(model="sim-model", input="x2")
        with pytest.raises(errors.ClientError) as info:
            await client.models.generate_content(model="sim-model", contents="x3")
        delay = next(
            d["retryDelay"]
            for d in info.value.details["error"]["details"]
            if d["@type"].endswith("RetryInfo")
        )
        assert float(delay[:-1]) == pytest.approx(1.0)
        clock.advance(1.0)
        await client.models.generate_content(model="sim-model", contents="x4")
        assert [r["code"] for r in sim.requests()] == [200, 200, 429, 429, 200]
    finally:
        await sim.stop()
