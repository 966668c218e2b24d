from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionRefusedError

from scraper.config import InvalidSetting
from scraper.meta import DELAY_UNTIL, VIA_SCHEDULER
from scraper.middlewares.retry import BackoffRetryMiddleware
from scraper.scheduler import MemoryDelayStore
from scraper.signals import dead_letter


class DemoSpider(Spider):
    name = "demo"


BASE = {"SCHEDULER": "scraper.scheduler.DelayingScheduler", "RETRY_BACKOFF_BASE": 1,
        "RETRY_BACKOFF_MAX": 30, "RETRY_BACKOFF_JITTER": "none"}


def middleware(**settings) -> BackoffRetryMiddleware:
    crawler = get_crawler(DemoSpider, settings_dict={**BASE, **settings})
    crawler.spider = crawler._create_spider()
    return BackoffRetryMiddleware.from_crawler(crawler)


def scheduled(url: str, **meta) -> Request:
    """A request as the scheduler hands it out."""
    return Request(url, meta={VIA_SCHEDULER: True, **meta})


def respond(mw, request, status, headers=None):
    request.meta.setdefault(VIA_SCHEDULER, True)
    response = Response(request.url, status=status, headers=headers or {}, request=request)
    return asyncio.run(mw.process_response(request, response))


def fail(mw, request, exception):
    request.meta.setdefault(VIA_SCHEDULER, True)
    return asyncio.run(mw.process_exception(request, exception))


def delay_of(request: Request) -> float:
    return request.meta[DELAY_UNTIL] - time.time()


def test_error_retries_back_off_exponentially_then_give_up_to_a_dead_letter() -> None:
    mw, letters = middleware(RETRY_TIMES=3, RETRY_FOR_SECONDS=0), []

    def collect(record):
        letters.append(record)

    mw.crawler.signals.connect(collect, signal=dead_letter)
    request = Request("http://a.test/x")
    mw.process_request(request)
    delays = []
    for _ in range(3):
        request = respond(mw, request, 500)
        assert isinstance(request, Request) and request.dont_filter
        delays.append(delay_of(request))
    assert [round(d) for d in delays] == [1, 2, 4]
    final = respond(mw, request, 500)
    assert isinstance(final, Response) and final.status == 500  # passed on, as Scrapy does
    (record,) = letters
    assert record["reason"] == "retry_exhausted" and record["budget"] == "error"
    assert (record["url"], record["method"], record["attempts"], record["last_status"]) == \
        ("http://a.test/x", "GET", 4, 500)
    assert record["first_attempt_at"] <= record["last_attempt_at"]
    stats = mw.crawler.stats
    assert stats.get_value("retry/count") == 3 and stats.get_value("retry/max_reached") == 1
    assert stats.get_value("retry/delayed") == 3 and stats.get_value("retry/reason_count/500") == 3


@pytest.mark.parametrize("value,expected", [
    (lambda: "7", 7), (lambda: formatdate(time.time() + 12, usegmt=True), 12),
    (lambda: "999999", 20),  # clamped to RETRY_AFTER_MAX
], ids=["delta-seconds", "http-date", "clamped"])
def test_retry_after_is_honoured_in_both_forms_and_clamped(value, expected) -> None:
    mw = middleware(RETRY_AFTER_MAX=20)
    retried = respond(mw, Request("http://a.test/x"), 429, {"Retry-After": value()})
    assert expected - 1.5 <= delay_of(retried) <= expected + 1.1
    assert mw.crawler.stats.get_value("retry/retry_after_honoured") == 1


def test_garbage_retry_after_falls_back_to_backoff() -> None:
    mw = middleware()
    before = time.time()  # (the delay is from the moment of the answer, not from this line's end)
    retried = respond(mw, Request("http://a.test/x"), 429, {"Retry-After": "tomorrow-ish"})
    took = time.time() - before
    assert 1 <= retried.meta[DELAY_UNTIL] - before <= 1.2 + took
    assert mw.crawler.stats.get_value("retry/retry_after_honoured") is None


def test_rate_limits_and_errors_have_separate_budgets() -> None:
    mw = middleware(RETRY_TIMES=1, RETRY_RATELIMIT_TIMES=5, RETRY_FOR_SECONDS=0)
    request = Request("http://a.test/x")
    for _ in range(5):  # five polite "come back in 1 s" answers...
        request = respond(mw, request, 429, {"Retry-After": "0"})
        assert isinstance(request, Request)
    assert request.meta["retry_times"] == 0 and request.meta["retry_ratelimit_times"] == 5
    request = respond(mw, request, 503)  # ...leave the error budget whole
    assert isinstance(request, Request) and request.meta["retry_times"] == 1
    assert isinstance(respond(mw, request, 503), Response)  # error budget (1) now spent


def test_503_with_retry_after_is_a_rate_limit_without_it_an_error() -> None:
    mw = middleware()
    limited = respond(mw, Request("http://a.test/x"), 503, {"Retry-After": "3"})
    error = respond(mw, Request("http://b.test/x"), 503)
    assert limited.meta.get("retry_ratelimit_times") == 1 and limited.meta["retry_times"] == 0
    assert error.meta["retry_times"] == 1 and "retry_ratelimit_times" not in error.meta


def test_burst_of_429s_is_one_backoff_event_and_holds_only_its_own_requests() -> None:
    """A 429's Retry-After delays that request alone: a site-wide slowdown is the adaptive
    controller's call (only rate limits beyond the site's background are our load)."""
    mw = middleware()
    delays = [delay_of(respond(mw, Request(f"http://a.test/{i}"), 429, {"Retry-After": "5"}))
              for i in range(30)]
    assert mw.crawler.stats.get_value("retry/backoff_events") == 1
    assert all(4 <= d <= 5.6 for d in delays)
    assert mw.process_request(scheduled("http://a.test/new")) is None  # fresh requests flow


def test_errors_are_retried_past_retry_times_while_the_fault_is_younger_than_the_time_budget() -> None:
    """RETRY_TIMES=2 alone dead-letters a page that fails 3 times in a row, even if the site recovers
    seconds later; RETRY_FOR_SECONDS keeps retrying (backed off) while the fault is recent."""
    mw = middleware(RETRY_TIMES=2, RETRY_FOR_SECONDS=60)
    request = Request("http://a.test/x")
    mw.process_request(request)
    for _ in range(6):
        request = respond(mw, request, 503)
        assert isinstance(request, Request)
    assert request.meta["retry_times"] == 6
    request.meta["retry_first_attempt_at"] -= 61  # the fault has lasted longer than the budget
    assert isinstance(respond(mw, request, 503), Response)  # given up (and dead-lettered)
    counted = middleware(RETRY_TIMES=2, RETRY_FOR_SECONDS=60)  # meta max_retry_times: a count only
    capped = Request("http://a.test/y", meta={"max_retry_times": 1})
    capped = respond(counted, capped, 503)
    assert isinstance(capped, Request) and isinstance(respond(counted, capped, 503), Response)


def test_direct_downloads_wait_in_the_middleware() -> None:
    mw = middleware()
    request = Request("http://a.test/robots.txt")  # not from the scheduler
    started = time.monotonic()
    response = Response(request.url, status=429, headers={"Retry-After": "1"}, request=request)
    retried = asyncio.run(mw.process_response(request, response))
    assert time.monotonic() - started >= 0.9
    assert isinstance(retried, Request) and DELAY_UNTIL not in retried.meta


def test_exceptions_are_retried_and_meta_overrides_apply() -> None:
    mw = middleware()
    request = Request("http://a.test/x", meta={"retry_backoff_base": 4, "max_retry_times": 1})
    retried = fail(mw, request, ConnectionRefusedError())
    assert 3.9 <= delay_of(retried) <= 4.1
    assert fail(mw, retried, ConnectionRefusedError()) is None  # max_retry_times=1
    assert fail(mw, Request("http://a.test/y", meta={"dont_retry": True}), ConnectionRefusedError()) is None
    assert respond(mw, Request("http://a.test/z", meta={"dont_retry": True}), 500).status == 500
    assert fail(mw, Request("http://a.test/q"), ValueError("not a network error")) is None


@pytest.mark.parametrize("setting,value", [
    ("RETRY_BACKOFF_JITTER", "random"), ("RETRY_BACKOFF_BASE", "-1"), ("RETRY_HTTP_CODES", ["abc"]),
    ("RETRY_RATELIMIT_HTTP_CODES", [999]), ("RETRY_EXCEPTIONS", ["no.such.Error"]),
    ("RETRY_TIMES", "lots"), ("SCHEDULER", "scrapy.core.scheduler.Scheduler"),
])
def test_invalid_settings_fail_naming_the_setting(setting, value) -> None:
    with pytest.raises(InvalidSetting, match=setting):
        middleware(**{setting: value})


def test_disabled() -> None:
    with pytest.raises(NotConfigured):
        middleware(RETRY_ENABLED=False)


def test_memory_delay_store_orders_by_due_time() -> None:
    store = MemoryDelayStore()
    for due, name in [(5, "c"), (1, "a"), (3, "b"), (1, "a2")]:
        store.push(Request(f"http://x/{name}"), due)
    assert store.next_due() == 1 and len(store) == 4
    assert [r.url[-2:].strip("/") for r in store.pop_due(3)] == ["a", "a2", "b"]
    assert [r.url for r in store.drain()] == ["http://x/c"] and len(store) == 0
