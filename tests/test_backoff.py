from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from scraper.backoff import BackoffPolicy, SiteBackoff, parse_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("jitter,low,high", [
    ("none", lambda d: d, lambda d: d),
    ("full", lambda d: 0.0, lambda d: d),
    ("equal", lambda d: d / 2, lambda d: d),
])
def test_exponential_delays_with_jitter_stay_in_bounds(jitter, low, high) -> None:
    policy, rng = BackoffPolicy(base=0.5, cap=10, jitter=jitter), random.Random(1)
    for attempt in range(12):
        ceiling = min(10, 0.5 * 2**attempt)
        for _ in range(50):
            assert low(ceiling) <= policy.delay(attempt, rng) <= high(ceiling)


def test_full_jitter_spreads_and_is_reproducible_with_a_seed() -> None:
    policy = BackoffPolicy(base=1, cap=100, jitter="full")
    first = [policy.delay(4, random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(7)
    samples = [policy.delay(4, rng) for _ in range(2000)]
    assert 7 < sum(samples) / len(samples) < 9  # mean of uniform(0, 16)


def test_decorrelated_jitter_grows_from_the_previous_delay_and_is_capped() -> None:
    policy, rng = BackoffPolicy(base=1, cap=20, jitter="decorrelated"), random.Random(3)
    previous = None
    for _ in range(40):
        delay = policy.delay(0, rng, previous)
        assert 1 <= delay <= min(20, 3 * (previous or 1))
        previous = delay


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert BackoffPolicy(base=1, cap=60, jitter="none").delay(10_000, random.Random()) == 60


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(jitter="random")
    with pytest.raises(ValueError):
        BackoffPolicy(base=5, cap=1)


@pytest.mark.parametrize("value,expected", [
    (b"120", 120.0), ("0", 0.0), (" 7 ", 7.0),
    (formatdate(1_000_030, usegmt=True), 30.0),
    (formatdate(999_000, usegmt=True), 0.0),  # in the past: go now
    (b"soon", None), (b"", None), (None, None), (b"-5", None), (b"1.5", None),
    ("Wed, 99 Foo 2026 25:00:00 GMT", None),
])
def test_parse_retry_after(value, expected) -> None:
    assert parse_retry_after(value, now=1_000_000.0) == expected


def test_a_burst_of_429s_is_one_backoff_event() -> None:
    clock = Clock()
    sites = SiteBackoff(BackoffPolicy(base=1, cap=60, jitter="none"), clock, random.Random(0))
    first, new = sites.rate_limited("a.com", None)
    assert new and 1 <= first <= 1.1
    for _ in range(20):  # the rest of the burst, arriving inside the window
        clock.now += 0.01
        delay, new = sites.rate_limited("a.com", None)
        assert not new and delay <= first
    assert sites.level("a.com") == 1
    assert sites.rate_limited("b.com", None)[1]  # other sites have their own windows
    clock.now += 2  # window over: the next 429 escalates
    delay, new = sites.rate_limited("a.com", None)
    assert new and sites.level("a.com") == 2 and 2 <= delay <= 2.2


def test_retry_after_times_its_own_request_and_success_resets() -> None:
    """A Retry-After may name one path, not the site: each request waits what it was told, a short
    one inside a longer window too; a 429 without the header joins the window."""
    clock = Clock()
    sites = SiteBackoff(BackoffPolicy(base=1, cap=60, jitter="none"), clock, random.Random(0))
    delay, new = sites.rate_limited("a.com", 5.0)
    assert new and 5 <= delay <= 5.5
    clock.now += 1
    delay, new = sites.rate_limited("a.com", 1.0)  # its own second, not the window's four
    assert not new and 1 <= delay <= 1.1
    delay, new = sites.rate_limited("a.com", None)  # no header: waits out the window
    assert not new and 4 <= delay <= 4.5
    clock.now += 11
    sites.succeeded("a.com")
    assert sites.level("a.com") == 0
