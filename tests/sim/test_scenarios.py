"""The six adaptive-concurrency scenarios, simulated (no Scrapy, no reactor, deterministic): real
sites fail some requests whatever our load, and only throttling our load causes may slow the crawl.
``make bench-ratelimit`` runs the same scenarios end to end against the local site."""

from __future__ import annotations

import statistics

import pytest

from tests.sim.crawl import Bucket, Faults, Site, crawl

BOOKS = 1000
MIXED = dict(share=0.25, kinds=("503", "429", "drop", "500"), times=2)  # 429s carry Retry-After: 1


def fast_site(**kwargs) -> Site:
    """Unlimited, but with a capacity (4 workers × 16 ms): more in flight only queues."""
    return Site(workers=4, service=0.016, **kwargs)


def test_1_background_faults_without_a_limit_cost_no_more_than_fixed_concurrency() -> None:
    """20-30% of paths fail transiently (mixed kinds) and nothing limits the rate: the crawl takes no
    more than 1.2x what a fixed 8 in flight takes with the same retries (Retry-After honoured)."""
    ours = crawl(fast_site(faults=Faults(**MIXED)), 120, paths=BOOKS)
    fixed = crawl(fast_site(faults=Faults(**MIXED)), 120, paths=BOOKS, fixed=8)
    assert ours.done == fixed.done == BOOKS
    assert ours.wall <= 1.2 * fixed.wall, (ours.wall, fixed.wall)
    # learnt from the site's opening, not obeyed: never cut
    assert ours.controller.cuts == 0 and ours.controller.floor.share > 0.03


def test_2_background_faults_and_a_token_bucket() -> None:
    """The same faults behind a 40/s token bucket: wall <= 1.5 x (requests needed / R)."""
    rate = 40
    needed = crawl(fast_site(faults=Faults(**MIXED)), 120, paths=BOOKS, fixed=8).sent
    ours = crawl(Site(bucket=Bucket(rate), faults=Faults(**MIXED)), 300, paths=BOOKS)
    assert ours.done == BOOKS
    assert ours.wall <= 1.5 * needed / rate, (ours.wall, needed / rate)


@pytest.mark.parametrize("rate,burst", [(40, 40), (20, 4), (100, 20)])
def test_3_pure_token_bucket_goodput_and_429_share(rate: int, burst: int) -> None:
    run = crawl(Site(bucket=Bucket(rate, burst)), 120)
    assert run.goodput(30, 120) >= 0.95 * rate
    assert run.share_limited(30, 120) <= 0.02


def test_4_capacity_that_changes_mid_crawl_is_followed_both_ways() -> None:
    """R 20 -> 60 (at 60 s) -> 20 (at 120 s): within 30 s of each change the goodput reaches the new
    R (a 3-second mean >= 90% of 60, then <= 110% of 20), holds it (>= 90% of 20 over the last 30 s),
    and over the whole crawl <= 5% of answers are 429s."""
    def change(now: float, site: Site) -> None:
        assert site.bucket is not None
        site.bucket.rate = 60 if 60 <= now < 120 else 20

    run = crawl(Site(bucket=Bucket(20)), 180, on_tick=change)
    mean = [run.goodput(s, s + 3) for s in range(177)]
    up = next(s for s in range(60, 120) if mean[s] >= 0.9 * 60)
    down = next(s for s in range(120, 177) if mean[s] <= 1.1 * 20)
    assert up - 60 <= 30 and down - 120 <= 30, (up, down)
    assert run.goodput(150, 180) >= 0.9 * 20
    assert run.share_limited(0, 180) <= 0.05


def test_5_per_path_429s_alone_keep_the_crawl_at_full_pace() -> None:
    """30% of paths answer 429 + Retry-After three times, whatever the rate (47% of all answers):
    first attempts go out at >= 80% of the pace of the same crawl without them."""
    faults = Faults(share=0.3, kinds=("429",), times=3)
    ours = crawl(fast_site(faults=faults), 120, paths=BOOKS)
    clean = crawl(fast_site(), 120, paths=BOOKS)
    assert ours.done == BOOKS and ours.share_limited() > 0.4
    assert BOOKS / ours.last_new >= 0.8 * BOOKS / clean.last_new, (ours.last_new, clean.last_new)


def test_5_per_path_429s_on_one_kind_of_page_after_an_opening_of_another() -> None:
    """As the books spider crawls the bench's site: listing pages (which never fail) are most of the
    opening, product pages (30% answer 429 three times) all the rest. Each kind has its own noise
    floor, so the products' 429s are background from the start: never a cut, full pace."""
    def listing(path: int) -> bool:
        return path < 150 and path % 3 != 0

    faults = Faults(share=0.3, kinds=("429",), times=3, match=lambda path: not listing(path))
    ours = crawl(fast_site(faults=faults), 120, paths=BOOKS,
                 kind=lambda path: "parse" if listing(path) else "parse_book")
    clean = crawl(fast_site(), 120, paths=BOOKS)
    assert ours.done == BOOKS and ours.controller.cuts == 0
    assert ours.controller.floor.kinds["parse"].share == 0
    assert ours.controller.floor.kinds["parse_book"].share > 0.2
    assert BOOKS / ours.last_new >= 0.8 * BOOKS / clean.last_new, (ours.last_new, clean.last_new)


def test_6_a_site_that_slows_under_load_is_kept_busy_without_a_queue() -> None:
    """Latency grows with what is in flight (8 workers, 50 ms each, FIFO): saturated, median latency
    at most 2x the service time (the latency gradient)."""
    run = crawl(Site(workers=8, service=0.05), 120)
    assert run.goodput(40, 120) >= 0.95 * 8 / 0.05
    assert statistics.median(latency for t, latency in run.latencies if t > 40) <= 2 * 0.05
    assert all(limit <= 24 for t, limit, _ in run.limits if t > 40)
