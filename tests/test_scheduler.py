"""The scheduler's delayed requests: counted apart by why they wait, released early when a pace relaxes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace

from scrapy import Request, Spider
from scrapy.utils.test import get_crawler

from scraper.meta import DELAY_UNTIL, send_back
from scraper.scheduler import DelayedRequestsMixin, MemoryDelayStore
from scraper.signals import pace_relaxed


class DemoSpider(Spider):
    name = "demo"


class ListQueue:
    """The part of a Scrapy scheduler the mixin builds on."""

    def __init__(self) -> None:
        self.queued: list[Request] = []

    def enqueue_request(self, request: Request) -> bool:
        self.queued.append(request)
        return True

    def has_pending_requests(self) -> bool:
        return bool(self.queued)

    def __len__(self) -> int:
        return len(self.queued)

    def close(self, reason: str) -> None:
        return None


class Scheduler(DelayedRequestsMixin, ListQueue):
    pass


def scheduler() -> tuple[Scheduler, list[Request]]:
    crawler = get_crawler(DemoSpider)
    crawler.stats.open_spider()
    crawled: list[Request] = []
    crawler.engine = SimpleNamespace(crawl=crawled.append)  # type: ignore[assignment]
    sched = Scheduler()
    sched._init_delays(crawler)
    return sched, crawled


def in_loop(check: Callable[[], None]) -> None:
    """Run ``check`` inside an event loop (the scheduler arms its release timer on it)."""
    async def run() -> None:
        check()

    asyncio.run(run())


def test_waiting_requests_are_counted_by_why_they_wait() -> None:
    in_loop(waiting_requests_are_counted)


def waiting_requests_are_counted() -> None:
    sched, _ = scheduler()
    later = time.time() + 60
    sched.enqueue_request(send_back(Request("http://a.test/1"), later, "paced"))
    sched.enqueue_request(send_back(Request("http://a.test/2"), later, "paced"))
    sched.enqueue_request(Request("http://a.test/3", meta={DELAY_UNTIL: later}))  # a retry
    stats = sched.crawler.stats
    assert stats.get_value("retry/pending") == 1 and stats.get_value("retry/pending_max") == 1
    assert stats.get_value("adaptive/pending") == 2 and stats.get_value("scheduler/waiting") == 3
    assert sched.has_pending_requests() and len(sched) == 3
    sched.close("finished")  # waiting requests are dead-lettered, counts reset
    assert stats.get_value("scheduler/waiting") == 0 and stats.get_value("adaptive/pending") == 0


def test_a_relaxed_pace_releases_only_that_slots_paced_requests() -> None:
    in_loop(a_relaxed_pace_releases_paced_requests)


def a_relaxed_pace_releases_paced_requests() -> None:
    sched, crawled = scheduler()
    later = time.time() + 60
    for url, slot in [("http://a.test/1", "a.test"), ("http://a.test/2", "a.test"), ("http://b.test/1", "b.test")]:
        sched.enqueue_request(send_back(Request(url, meta={"download_slot": slot}), later, "paced"))
    sched.enqueue_request(Request("http://a.test/retry", meta={"download_slot": "a.test", DELAY_UNTIL: later}))
    sched.crawler.signals.send_catch_log(pace_relaxed, slot="a.test")
    assert sorted(r.url for r in crawled) == ["http://a.test/1", "http://a.test/2"]
    assert all(DELAY_UNTIL not in r.meta for r in crawled)
    stats = sched.crawler.stats
    assert stats.get_value("adaptive/pending") == 1 and stats.get_value("retry/pending") == 1
    assert len(sched.delay_store) == 2  # b.test's paced request and a.test's retry wait on
    sched.close("finished")


def test_memory_delay_store_take() -> None:
    store = MemoryDelayStore()
    for due, name in [(5, "c"), (1, "a"), (3, "b")]:
        store.push(Request(f"http://x/{name}"), due)
    assert [r.url for r in store.take(lambda r: r.url.endswith("b"))] == ["http://x/b"]
    assert store.next_due() == 1 and [r.url for r in store.pop_due(10)] == ["http://x/a", "http://x/c"]
