from __future__ import annotations

from pathlib import Path

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from localsite.process import LocalSite
from scraper.config import InvalidSetting
from scraper.middlewares.adaptive import AdaptiveConcurrencyMiddleware
from tests.helpers import run_crawl, stat


class DemoSpider(Spider):
    name = "demo"


def extension(**settings) -> AdaptiveConcurrencyMiddleware:
    return AdaptiveConcurrencyMiddleware.from_crawler(get_crawler(DemoSpider, settings_dict=settings))


@pytest.mark.parametrize("setting,value", [
    ("ADAPTIVE_MAX_CONCURRENCY", "0"), ("ADAPTIVE_DECREASE", "1.5"), ("ADAPTIVE_WINDOW", "soon"),
    ("ADAPTIVE_START_CONCURRENCY", "64"), ("ADAPTIVE_LATENCY_TOLERANCE", "0.5"),
    ("AUTOTHROTTLE_ENABLED", "True"),
])
def test_invalid_settings_fail_naming_the_setting(setting: str, value: str) -> None:
    with pytest.raises(InvalidSetting, match=setting):
        extension(**{setting: value})


def test_disabled() -> None:
    with pytest.raises(NotConfigured):
        extension(ADAPTIVE_CONCURRENCY_ENABLED=False)


def test_dont_adapt_requests_are_not_measured() -> None:
    ext = extension()
    ext.controllers["a.test"] = object()  # type: ignore[assignment]
    assert ext._controller(Request("http://a.test/", meta={"download_slot": "a.test"})) is not None
    assert ext._controller(Request("http://a.test/", meta={"download_slot": "a.test",
                                                           "dont_adapt": True})) is None


def test_crawl_against_a_token_bucket_paces_just_under_the_limit(tmp_path: Path) -> None:
    rate = 30
    books = 600  # ~20 s at the limit: long enough for a steady state after the warm-up
    with LocalSite(books=books, seed=61, rate_limit=rate, burst=rate) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", "ADAPTIVE_LOG_INTERVAL=2")
        stats = site.stats(timeline=True)
    assert result.returncode == 0, result.log[-3000:]
    assert len(result.rows()) == books
    served, limited = int(stats["statuses"]["200"]), int(stats["statuses"].get("429", 0))
    # The first overshoot (slow start into the bucket, held once its 429s flood in: ~20-40 of them)
    # is most of the 429s of so short a crawl; after warm-up, few are left.
    assert limited / (served + limited) < 0.15
    timeline = {int(second): counts for second, counts in stats["timeline"].items()}
    seconds = range(min(timeline), max(timeline) + 1)
    per_second = [int(timeline.get(t, {}).get("200", 0)) for t in seconds]
    limited_per_second = [int(timeline.get(t, {}).get("429", 0)) for t in seconds]
    # (the first ceiling is an estimate: probing past it costs a second, smaller overshoot within
    # the first ~10 s; the steady-state target, <= 2% after warm-up, is `make bench-ratelimit`'s)
    late = slice(12, None)
    assert sum(limited_per_second[late]) / max(1, sum(per_second[late]) + sum(limited_per_second[late])) < 0.05
    steady = per_second[5:-1]  # after warm-up, without the partial last second
    # Close to the limit, not far below it (before pacing moved to the scheduler this was ~0.25 R;
    # the precise target, >= 0.95 R, is measured by `make bench-ratelimit` on a longer crawl).
    assert sum(steady) / len(steady) >= 0.6 * rate
    assert stat(result, "adaptive/127.0.0.1/delay_ms") > 0
    assert stat(result, "adaptive/paced") > 100  # early requests waited in the scheduler
    assert "Adaptive concurrency: 127.0.0.1 c=" in result.log
    assert "'adaptive/127.0.0.1/latency_p50_ms'" in result.log


def test_unthrottled_crawl_grows_from_slow_start(tmp_path: Path, books_site: LocalSite) -> None:
    books_site.reset()
    result = run_crawl("books", tmp_path / "out", "-a", f"start_url={books_site.url}",
                       "-s", "ADAPTIVE_LOG_INTERVAL=0.5", "-s", "ADAPTIVE_WINDOW=0.5")
    assert result.returncode == 0
    # Opens low, no thundering herd: as in TCP slow start, each answered request lets at most one
    # more in, so the server never has more in flight than the start (2) + what it has answered.
    arrivals = books_site.stats(arrivals=True)["arrivals"]
    assert len(arrivals) >= 100
    assert all(in_flight <= 2 + answered for in_flight, answered in arrivals), arrivals[:20]
    lines = [line for line in result.log.splitlines() if "Adaptive concurrency:" in line]
    concurrency = [int(line.split(" c=")[1].split()[0]) for line in lines]
    assert concurrency and max(concurrency) >= 8  # and grows on an unthrottled site
    assert stat(result, "adaptive/127.0.0.1/delay_ms") == 0  # never paced: no 429s
    # Connections are kept alive up to the slot's ceiling (scraper/handlers/http11.py); Scrapy's own
    # handler keeps 8 (CONCURRENT_REQUESTS_PER_DOMAIN) and opened ~150 on this crawl.
    assert books_site.stats()["connections"] <= 16


def test_a_paced_start_missed_by_far_is_taken_anew() -> None:
    """A paced request released on time can still wait in the queue behind higher-priority ones;
    if all such late requests went at once, they would be the burst pacing exists to prevent."""
    import time
    from types import SimpleNamespace

    from scraper.concurrency import SlotController
    from scraper.meta import DELAY_UNTIL, VIA_SCHEDULER
    from scraper.middlewares.adaptive import PACED_AT

    ext = extension(ADAPTIVE_PACE_JITTER=0)
    controller = SlotController(ext.config, time.monotonic())
    controller.rate = 40.0  # a 25 ms gap
    ext.controllers["a.test"] = controller
    ext.crawler.engine = SimpleNamespace(downloader=SimpleNamespace(get_slot_key=lambda request: "a.test"))
    now = time.time()
    ext._next_start["a.test"] = now + 0.5  # the pace is booked half a second ahead

    def paced(reserved: float) -> Request:
        return Request("http://a.test/", meta={VIA_SCHEDULER: True, PACED_AT: reserved})

    assert ext.process_request(paced(now - 0.01)) is None  # its start has just come: it goes
    again = ext.process_request(paced(now - 5))  # missed by far: back to wait for a new start
    assert again is not None and again.meta[DELAY_UNTIL] >= now + 0.5
    assert again.meta[PACED_AT] == again.meta[DELAY_UNTIL]


def test_download_delay_is_honoured_as_a_minimum_gap() -> None:
    """DOWNLOAD_DELAY was silently ignored while adaptive was on: the slot's own delay (read when the
    slot is created) is now a minimum gap between starts, paced or not, randomised as Scrapy does."""
    import time
    from types import SimpleNamespace

    from scraper.meta import DELAY_UNTIL, VIA_SCHEDULER
    from scraper.middlewares.adaptive import PACED_AT

    ext = extension()
    ext.crawler.engine = SimpleNamespace(downloader=SimpleNamespace(get_slot_key=lambda request: "a.test"))
    ext._slot_delays["a.test"] = (0.5, 0.5)  # DOWNLOAD_DELAY=0.5, RANDOMIZE_DOWNLOAD_DELAY (±50%)
    first = ext.process_request(Request("http://a.test/1", meta={VIA_SCHEDULER: True}))
    assert first is None  # the first start goes at once
    second = ext.process_request(Request("http://a.test/2", meta={VIA_SCHEDULER: True}))
    assert second is not None and 0.2 <= second.meta[DELAY_UNTIL] - time.time() <= 0.8
    assert second.meta[PACED_AT] == second.meta[DELAY_UNTIL]
    assert ext._gap("b.test") == 0  # other slots: no delay, no controller pace


def test_download_delay_spaces_a_real_crawl(tmp_path: Path) -> None:
    """End to end: DOWNLOAD_DELAY=0.1 on 43 requests spreads them over 4 s or more (adaptive on; it
    used to set the slot's delay to 0 and crawl them in half a second)."""
    with LocalSite(books=40, seed=67) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", "DOWNLOAD_DELAY=0.1", "-s", "RANDOMIZE_DOWNLOAD_DELAY=False")
        timeline = site.stats(timeline=True)["timeline"]
    assert result.returncode == 0, result.log[-3000:]
    assert len(result.rows()) == 40
    seconds = sorted(int(second) for second in timeline)
    assert seconds[-1] - seconds[0] >= 3, timeline


def test_slots_the_downloader_forgot_are_forgotten_with_their_stats() -> None:
    """A broad crawl's per-site state stays bounded: when Scrapy's downloader drops an idle slot (its
    _slot_gc, after a minute), its controller, pacing state and stats keys go too."""
    import time
    from types import SimpleNamespace

    from scraper.concurrency import SlotController

    ext = extension()
    ext.crawler.stats.open_spider()
    for key in ("a.test", "b.test"):
        ext.controllers[key] = SlotController(ext.config, time.monotonic())
        ext._next_start[key] = time.time()
    ext._publish()
    assert "adaptive/b.test/concurrency" in ext.crawler.stats.get_stats()
    ext.crawler.engine = SimpleNamespace(downloader=SimpleNamespace(slots={"a.test": object()}))
    ext._forget_idle()
    stats = ext.crawler.stats.get_stats()
    assert list(ext.controllers) == ["a.test"] and "b.test" not in ext._next_start
    assert not any(name.startswith("adaptive/b.test/") for name in stats)
    assert "adaptive/a.test/concurrency" in stats and stats["adaptive/slots_forgotten"] == 1


def test_each_kind_of_page_is_measured_apart() -> None:
    """A spider's callbacks are its kinds of page (each has its own noise floor); ``meta["page_kind"]``
    names one explicitly. Retries count as their kind's too, apart from first attempts."""
    import time
    from types import SimpleNamespace

    from scrapy.http import HtmlResponse

    from scraper.concurrency import SlotController

    class Shop(Spider):
        name = "shop"

        def parse_product(self, response):  # pragma: no cover - never called
            return None

    spider = Shop()
    ext = extension()
    controller = ext.controllers["a.test"] = SlotController(ext.config, time.monotonic())
    ext.crawler.engine = SimpleNamespace(downloader=SimpleNamespace(slots={}))
    requests = [Request("http://a.test/1", callback=spider.parse_product),
                Request("http://a.test/2", callback=spider.parse_product, meta={"retry_times": 1}),
                Request("http://a.test/3"),
                Request("http://a.test/4", callback=spider.parse_product, meta={"page_kind": "search"})]
    for request, status in zip(requests, (429, 429, 200, 200), strict=True):
        request.meta["download_slot"] = "a.test"
        ext.downloaded(HtmlResponse(request.url, status=status, request=request), request)
    assert controller._window.kinds == {"parse_product": [1, 1], "parse": [1, 0], "search": [1, 0]}
