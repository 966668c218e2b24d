"""The adaptive-concurrency control law: unit cases, and simulated sites beside tests/sim's scenarios."""

from __future__ import annotations

import itertools
import random

import pytest

from scraper.concurrency import (
    MAX_KINDS,
    OPENING,
    PROBE_BURST,
    ControllerConfig,
    NoiseFloor,
    NoiseFloors,
    SlotController,
    _Counts,
)
from tests.sim.crawl import Bucket, Site, crawl

KNOWN_GAP = "open (docs/adaptive.md, Known gaps): "


@pytest.mark.parametrize("rate,burst", [
    pytest.param(5, 2, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAP + "a 5/s bucket's first ceiling, "
                                               "underestimated, is probed past only every 15 s: 0.93 R")),
    (50, 10),
    (50, 50),
    (200, 40),
])
def test_token_buckets_of_other_rates_and_bursts(rate: int, burst: int) -> None:
    """Beside tests/sim/test_scenarios.py's: a very slow, a very fast and a deep bucket."""
    run = crawl(Site(bucket=Bucket(rate, burst), latency=0.05), 120)
    assert run.goodput(40, 120) >= 0.95 * rate
    assert run.share_limited(40, 120) <= 0.02


def test_reconverges_after_capacity_halves() -> None:
    def halve(now: float, site: Site) -> None:
        assert site.bucket is not None
        if now >= 60:
            site.bucket.rate = 25

    run = crawl(Site(bucket=Bucket(50, 10), latency=0.05), 120, on_tick=halve)
    assert run.goodput(70, 120) >= 0.95 * 25  # from 10 s after the halving on
    assert run.share_limited(70, 120) <= 0.02  # probes past the new limit included


def test_a_first_ceiling_estimated_too_low_is_probed_past() -> None:
    """The first 429's window also holds its Retry-After pause, and slow start had not ramped up, so
    the site seemed to accept 6/s; it accepts far more. That first ceiling is only an estimate: the
    rate is probed past it with doubling steps instead of settling under it for good."""
    controller = SlotController(ControllerConfig(start=2), 0.0)
    for _ in range(6):
        controller.record("ok", 0.01, in_flight=2)
    for _ in range(6):
        controller.record("limited", in_flight=2)
    first = 1 / controller.decide(1.0).delay
    assert first == pytest.approx(6 * 0.93)
    for _ in range(30):  # the next window: no 429 at the paced rate, the cut stands
        controller.record("ok", 0.01, in_flight=2)
    controller.decide(2.0)
    for window in range(15):  # the pace binds, nothing is refused
        for _ in range(round(1 / controller.decision().delay)):
            controller.record("ok", 0.01, in_flight=2)
        controller.decide(2.0 + window)
    assert 1 / controller.decision().delay >= 40
    for _ in range(10):  # 429s at a paced rate: now the ceiling is known
        controller.record("limited", in_flight=2)
    confirmed = 1 / controller.decide(20.0).delay
    for window in range(10):
        for _ in range(round(1 / controller.decision().delay)):
            controller.record("ok", 0.01, in_flight=2)
        controller.decide(21.0 + window)
    assert 1 / controller.decision().delay <= confirmed * 1.1  # settled just under it again


def test_past_a_first_estimate_steps_stay_small_until_a_burst_could_no_longer_hide_the_overshoot() -> None:
    """A first ceiling of ~40/s, right this time (a 40/s bucket whose burst has refilled): probing
    past it, no 429 shows until the burst drains, so the steps stay under PROBE_BURST until a window's
    worth was sent past the estimate; only then do they double (doubling at once ran it to 60/s)."""
    controller = SlotController(ControllerConfig(start=8), 0.0)
    for _ in range(43):
        controller.record("ok", 0.002, in_flight=8)
    for _ in range(30):
        controller.record("limited", in_flight=8)
    controller.decide(1.0)
    estimate = controller.ceiling
    rates, now = [1 / controller.decision().delay], 1.0
    for _ in range(25):  # the pace binds, nothing is refused
        for _ in range(round(rates[-1])):
            controller.record("ok", 0.002, in_flight=2)
        now += 1.0
        rates.append(1 / controller.decide(now).delay)
    assert estimate is not None and rates[0] < estimate
    overshoot, doubled = 0.0, False  # requests sent past the estimate so far
    for rate, after in itertools.pairwise(rates):
        overshoot += max(0.0, rate - estimate)  # (one window at ``rate``)
        if estimate <= rate and overshoot < estimate:  # less than a window's worth sent past it
            assert after <= rate * (1 + PROBE_BURST) + 1e-9
        doubled |= overshoot >= estimate and after > rate * (1 + PROBE_BURST)
    assert doubled  # ...and then the steps double again
    assert rates[-1] > 1.5 * estimate  # a site whose capacity is higher is still found


def test_a_cut_paces_at_what_the_site_accepted_once_it_refused_some() -> None:
    """The rate sent rose through the evidence windows (20, 30, then 44/s with 4 refused): a bucket
    that refuses some passes exactly its rate, so the cut paces at 0.93 x the 40/s of the last
    window, not at the average over every evidence window (the opening's included: 44/s here)."""
    controller = SlotController(ControllerConfig(start=16), 0.0)
    for _ in range(OPENING):  # an opening without 429s: floor 0
        controller.record("ok", 0.002, in_flight=2)
    controller.decide(1.0)
    for second, (ok, limited) in enumerate([(20, 0), (30, 0), (40, 4)], start=2):
        for _ in range(ok):
            controller.record("ok", 0.002, in_flight=2)
        for _ in range(limited):
            controller.record("limited", in_flight=2)
        controller.decide(float(second))
    assert controller.cuts == 1
    assert 1 / controller.decision().delay == pytest.approx(0.93 * 40, rel=0.01)


def test_slow_start_and_bounds() -> None:
    config = ControllerConfig(min_concurrency=2, start=2, max_concurrency=10)
    controller, now = SlotController(config, 0.0), 0.0
    controller.record("ok", 0.05, in_flight=0)  # the slot is not full: no growth
    assert controller.decision().concurrency == 2
    seen = []
    for _ in range(12):  # every success comes back to a full slot: one more each, up to max
        controller.record("ok", 0.05, in_flight=controller.decision().concurrency)
        seen.append(controller.decision().concurrency)
    assert seen[:4] == [3, 4, 5, 6] and max(seen) == 10 and seen[-1] == 10
    now += 1
    assert controller.decide(now).concurrency == 10  # never past max
    for _ in range(10):  # repeated timeouts shrink it, down to the floor
        controller.record("error", in_flight=1)
        now += 1
        controller.decide(now)
    assert controller.decision().concurrency == 2  # min holds


def test_a_burst_of_429s_in_one_window_is_one_decrease() -> None:
    controller = SlotController(ControllerConfig(start=16, max_concurrency=16), 0.0)
    for _ in range(5):
        controller.record("ok", 0.05, in_flight=16)
    for _ in range(40):
        controller.record("limited", in_flight=16)
    decision = controller.decide(1.0)
    assert decision.concurrency == 8  # × 0.5 once, not 0.5 ** 40
    assert decision.delay == pytest.approx(1 / (5 * 0.93))  # paced at the accepted rate, × 0.93
    for _ in range(5):  # the cut is judged: the 429s stopped, it stands
        controller.record("ok", 0.05, in_flight=8)
    for _ in range(25):
        controller.record("ok", 0.05, in_flight=8)
    settled = controller.decide(2.0)
    for _ in range(5):  # once paced, further rate limits cut the rate, not the concurrency
        controller.record("ok", 0.05, in_flight=8)
    for _ in range(30):
        controller.record("limited", in_flight=8)
    again = controller.decide(3.0)
    assert again.concurrency == settled.concurrency and again.delay > decision.delay


def test_timeouts_and_unused_capacity() -> None:
    controller = SlotController(ControllerConfig(start=10), 0.0)
    controller.record("error", in_flight=10)
    assert controller.decide(1.0).concurrency == 7
    for _ in range(20):  # demand below the limit: no reason to grow
        controller.record("ok", 0.05, in_flight=2)
    assert controller.decide(2.0).concurrency == 7


def windows_with_errors(controller: SlotController, rng: random.Random, count: int, answers: int,
                        error_share: float, start: float) -> list[int]:
    """``count`` one-second windows of ``answers`` each, a share of them errors, the slot full:
    the concurrency after each."""
    limits = []
    for window in range(count):
        limit = controller.decision().concurrency
        for _ in range(answers):
            controller.record("error" if rng.random() < error_share else "ok", 0.01, in_flight=limit)
        limits.append(controller.decide(start + window + 1).concurrency)
    return limits


def test_random_errors_unrelated_to_load_do_not_cut_the_concurrency() -> None:
    """20% of requests fail whatever the load (a flaky site): that share is learnt as the errors'
    noise floor, so the concurrency is not cut for it and grows to its maximum while it binds."""
    controller = SlotController(ControllerConfig(start=16, max_concurrency=32), 0.0)
    limits = windows_with_errors(controller, random.Random(7), 60, 100, 0.2, 0.0)
    assert min(limits) >= 12 and limits[-1] == 32
    assert controller.error_floor.share == pytest.approx(0.2, abs=0.05)


def test_errors_rising_above_their_floor_still_cut() -> None:
    """Learnt at 10%, errors jumping to 60% (an overloaded site) halve the concurrency within 6 s."""
    rng = random.Random(8)
    controller = SlotController(ControllerConfig(start=16, max_concurrency=32), 0.0)
    before = windows_with_errors(controller, rng, 20, 100, 0.1, 0.0)[-1]
    after = windows_with_errors(controller, rng, 6, 20, 0.6, 20.0)[-1]
    assert after <= before / 2


def test_random_errors_do_not_freeze_a_paced_rate() -> None:
    """Paced after a 429 at an underestimate (the first 429 window holds its Retry-After pause), the
    rate is probed up while the pace binds; 20% of requests failing at random changes nothing."""
    def paced_rate_after(windows: int, error_share: float) -> tuple[float, float]:
        rng = random.Random(3)
        controller = SlotController(ControllerConfig(start=4), 0.0)
        for _ in range(6):
            controller.record("ok", 0.01, in_flight=4)
        for _ in range(6):
            controller.record("limited", in_flight=4)
        first = 1 / controller.decide(1.0).delay
        for window in range(windows):  # every window sends at the paced rate
            for _ in range(round(1 / controller.decision().delay)):
                controller.record("error" if rng.random() < error_share else "ok", 0.01, in_flight=2)
            controller.decide(2.0 + window)
        return first, 1 / controller.decision().delay

    first, clean = paced_rate_after(10, 0.0)
    _, flaky = paced_rate_after(10, 0.2)
    assert clean > first and flaky == pytest.approx(clean)


def test_mostly_failing_windows_still_cut_to_the_floor() -> None:
    controller, now = SlotController(ControllerConfig(start=16, max_concurrency=32), 0.0), 0.0
    for _ in range(15):  # 60% of requests fail: cut × 0.82 per window, no growth
        limit = controller.decision().concurrency
        for i in range(10):
            controller.record("error" if i < 6 else "ok", 0.01, in_flight=limit)
        now += 1
        controller.decide(now)
    assert controller.decision().concurrency == 1


@pytest.mark.parametrize("kwargs", [dict(start=0), dict(min_concurrency=5, start=2), dict(decrease=1.0),
                                    dict(tolerance=0.5), dict(window=0), dict(pace_jitter=1.0)])
def test_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        ControllerConfig(**kwargs)


def test_a_floor_measured_on_few_answers_widens_the_noise_band() -> None:
    """A window of 373 answers with 30% rate limits, over a floor of 20%: significant against an exact
    floor, noise against one estimated from 85 answers (its own spread is ~4.3 points)."""
    exact, estimated = NoiseFloor(0.2), NoiseFloor(0.2, samples=85)
    assert exact.excess(112, 373) > 0
    assert estimated.excess(112, 373) == 0
    estimated.learn(30, 100)  # more answers: the estimate firms up (and moves)
    assert estimated.samples == 185


def _opening(controller: SlotController, limited_at: set[int]) -> None:
    for i in range(1, OPENING + 1):
        controller.record("limited" if i in limited_at else "ok", latency=0.01, in_flight=1)


def test_rate_limits_spread_through_a_sites_opening_are_its_background() -> None:
    """No limiter refuses a new client's first requests: 429s spread through them are background. The
    first window then shows no excess, and nothing is cut."""
    controller = SlotController(ControllerConfig(), now=0.0)
    _opening(controller, limited_at=set(range(2, OPENING + 1, 4)))  # a quarter, spread
    assert controller.floor.share == pytest.approx(0.25) and controller.floor.samples == OPENING
    for i in range(OPENING):
        controller.record("limited" if i % 4 == 0 else "ok", latency=0.01, in_flight=1)
    controller.decide(1.0)
    assert controller.cuts == 0 and controller.rate is None


@pytest.mark.parametrize("burst", [OPENING - 10, OPENING - 6, OPENING // 2, 5])
def test_rate_limits_late_in_the_opening_are_a_burst_running_out(burst: int) -> None:
    """A token bucket's burst, then its 429s (most answers, or a flood): the floor learns nothing."""
    controller = SlotController(ControllerConfig(), now=0.0)
    _opening(controller, limited_at={i for i in range(burst + 1, OPENING + 1) if i % 5})
    assert controller.floor.share == 0
    controller.decide(1.0)
    assert controller.cuts == 1


def test_an_opening_of_one_kind_of_page_seeds_no_floor_for_another() -> None:
    """Listing pages (never a 429) first, then product pages, a third of them 429s spread among them:
    each kind's floor is its own share, and a window of products alone at that share is background.
    One floor for the slot (a fifth) would have cut."""
    controller = SlotController(ControllerConfig(), now=0.0)
    for i in range(1, OPENING + 1):
        product = i > 40
        controller.record("limited" if product and i % 3 == 0 else "ok", latency=0.01, in_flight=1,
                          kind="parse_book" if product else "parse")
    floors = controller.floor
    assert floors.kinds["parse"].share == 0 and floors.kinds["parse_book"].share == pytest.approx(1 / 3)
    assert floors.share == pytest.approx(0.2)
    for i in range(150):
        controller.record("limited" if i % 3 == 0 else "ok", latency=0.01, in_flight=1, kind="parse_book")
    controller.decide(1.0)
    assert controller.cuts == 0 and controller.rate is None


def test_a_burst_running_out_is_late_among_each_kind_of_page() -> None:
    """Two kinds interleaved through the opening, both refused once a burst ran out: late among
    each kind's own answers, so nothing is seeded and the first window cuts."""
    controller = SlotController(ControllerConfig(), now=0.0)
    for i in range(1, OPENING + 1):
        controller.record("limited" if i > 70 and i % 4 else "ok", latency=0.01, in_flight=1,
                          kind="parse" if i % 2 else "parse_book")
    assert controller.floor.share == 0 and not controller.floor.kinds
    controller.decide(1.0)
    assert controller.cuts == 1


def test_a_burst_that_ran_out_as_the_crawl_turned_to_another_kind_seeds_nothing() -> None:
    """Listing pages while the burst lasted, then product pages all refused: no kind's 429s are late
    among its own, but a kind refused wholesale is a limit, not background."""
    controller = SlotController(ControllerConfig(), now=0.0)
    for i in range(1, OPENING + 1):
        controller.record("limited" if i > 60 else "ok", latency=0.01, in_flight=1,
                          kind="parse_book" if i > 60 else "parse")
    assert controller.floor.share == 0 and not controller.floor.kinds
    controller.decide(1.0)
    assert controller.cuts == 1


def test_a_kind_first_seen_after_the_opening_starts_from_the_slots_floor() -> None:
    floors = NoiseFloors()
    floors.seed({"parse": [OPENING, OPENING // 10]})
    assert floors.kinds["parse"].share == pytest.approx(0.1) and "search" not in floors.kinds
    counts = _Counts(first=50, first_limited=5, kinds={"search": [50, 5]})
    assert floors.share_of(counts) == pytest.approx(0.1) and floors.excess(counts) == 0
    floors.learn(_Counts(first=100, first_limited=30, kinds={"search": [100, 30]}))
    assert 0.1 < floors.kinds["search"].share < 0.3
    for kind in range(2 * MAX_KINDS):  # a page_kind per URL: the slot's floor serves those past the cap
        floors.learn(_Counts(first=1, kinds={str(kind): [1, 0]}))
    assert len(floors.kinds) == MAX_KINDS


def test_a_window_of_retries_alone_does_not_probe_the_rate() -> None:
    """Rate limits are judged on first attempts: a crawl's tail of retries could not show that a probe
    went too far, so the rate holds until first attempts come back."""
    controller = SlotController(ControllerConfig(), now=0.0)
    controller.rate = controller.ceiling = 20.0
    controller.limit = 8

    def window(now: float, first: int, retries: int) -> float:
        for _ in range(first):
            controller.record("ok", latency=0.01, in_flight=8)
        for _ in range(retries):
            controller.record("ok", latency=0.01, in_flight=8, retry=True)
        controller.decide(now)
        assert controller.rate is not None
        return controller.rate

    assert window(1.0, first=20, retries=0) > 20  # an unconfirmed ceiling is probed past
    held = window(2.0, first=2, retries=20)
    assert window(3.0, first=2, retries=20) == held
    assert window(4.0, first=20, retries=2) > held
