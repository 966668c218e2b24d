"""Downloader middleware: retries with exponential backoff, jitter and ``Retry-After``, holding no slot.
Scrapy's ``RetryMiddleware`` retries at once, which hammers a site that asked us to wait; here a retry
waits in the scheduler. Budgets, timing and ``meta`` keys: docs/retries.md."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.utils.asyncio import sleep
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import load_object

from scraper import signals as our_signals
from scraper.backoff import JITTERS, BackoffPolicy, SiteBackoff, is_rate_limit, parse_retry_after
from scraper.config import InvalidSetting, get_bool, get_choice, get_float, get_int, get_status_codes
from scraper.crawling import spider_of, stats_of
from scraper.meta import (
    DELAY_UNTIL,
    MAX_RATELIMIT_RETRY_TIMES,
    RATELIMIT_TIMES,
    RETRY_BACKOFF_BASE,
    RETRY_BACKOFF_JITTER,
    RETRY_BACKOFF_MAX,
    RETRY_DELAY,
    RETRY_FOR_SECONDS,
    VIA_SCHEDULER,
    attempts,
)
from scraper.scheduler import HoldsDelayedRequests

logger = logging.getLogger(__name__)

FIRST_ATTEMPT_KEY = "retry_first_attempt_at"
SCRAPY_RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]  # Scrapy's RETRY_HTTP_CODES default


def site_of(request: Request) -> str:
    """The site a request's politeness is accounted to: its download slot, else its host."""
    return request.meta.get("download_slot") or urlparse_cached(request).hostname or ""


class BackoffRetryMiddleware:
    def __init__(self, crawler: Crawler, *, error_codes: frozenset[int], ratelimit_codes: frozenset[int],
                 exceptions: tuple[type[BaseException], ...], error_times: int, ratelimit_times: int,
                 policy: BackoffPolicy, retry_after_max: float, retry_for: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.crawler = crawler
        self.error_codes = error_codes
        self.ratelimit_codes = ratelimit_codes
        self.exceptions = exceptions
        self.error_times = error_times
        self.ratelimit_times = ratelimit_times
        self.policy = policy
        self.retry_after_max = retry_after_max
        self.retry_for = retry_for
        self.rng = rng or random.Random()
        self.sites = SiteBackoff(policy, rng=self.rng)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        settings = crawler.settings
        if not get_bool(settings, "RETRY_ENABLED", True):
            raise NotConfigured("RETRY_ENABLED is False")
        scheduler = load_object(settings["SCHEDULER"])
        if not (isinstance(scheduler, type) and issubclass(scheduler, HoldsDelayedRequests)):
            raise InvalidSetting("SCHEDULER", settings["SCHEDULER"],
                                 "a scheduler that holds delayed requests (scraper.scheduler.HoldsDelayedRequests; "
                                 "leave SCHEDULER unset and the add-on picks one): retries must not wait in "
                                 "the downloader")
        base = get_float(settings, "RETRY_BACKOFF_BASE", 0.5, minimum=0.001)
        cap = get_float(settings, "RETRY_BACKOFF_MAX", 60.0, minimum=base)
        return cls(
            crawler,
            error_codes=get_status_codes(settings, "RETRY_HTTP_CODES", SCRAPY_RETRY_HTTP_CODES),
            ratelimit_codes=get_status_codes(settings, "RETRY_RATELIMIT_HTTP_CODES", [429]),
            exceptions=_exceptions(settings),
            error_times=get_int(settings, "RETRY_TIMES", 2, minimum=0),
            ratelimit_times=get_int(settings, "RETRY_RATELIMIT_TIMES", 8, minimum=0),
            policy=BackoffPolicy(base, cap, get_choice(settings, "RETRY_BACKOFF_JITTER", "full", JITTERS)),
            retry_after_max=get_float(settings, "RETRY_AFTER_MAX", 300.0, minimum=0),
            retry_for=get_float(settings, "RETRY_FOR_SECONDS", 60.0, minimum=0),
        )

    def process_request(self, request: Request) -> None:
        request.meta.setdefault(FIRST_ATTEMPT_KEY, time.time())

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        return await self._waited(request, self._on_response(request, response))

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        return await self._waited(request, self._on_exception(request, exception))

    async def _waited(self, request: Request, result: Any) -> Any:
        """A retry of a request that did not come from the scheduler waits here (holding its place:
        there is nowhere else to wait); a scheduled one waits in the scheduler."""
        if not request.meta.pop(VIA_SCHEDULER, False) and isinstance(result, Request):
            due = result.meta.pop(DELAY_UNTIL, None)
            if due is not None:
                await sleep(max(0.0, due - time.time()))
        return result

    def _on_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry"):
            return response
        status = response.status
        retry_after = response.headers.get(b"Retry-After")
        if is_rate_limit(status, retry_after, self.ratelimit_codes):
            return self._retry_ratelimited(request, response, retry_after) or response
        if status in self.error_codes:
            return self._retry_error(request, f"{status}", status) or response
        if 200 <= status < 400:
            self.sites.succeeded(site_of(request))
        return response

    def _on_exception(self, request: Request, exception: Exception) -> Request | None:
        if request.meta.get("dont_retry") or isinstance(exception, IgnoreRequest):
            return None
        if not isinstance(exception, self.exceptions):  # retrying cannot help: record it, let it fail
            too_large = isinstance(exception, DownloadCancelledError) and "max size" in str(exception)
            self._dead_letter(request, "too_large" if too_large else "download_failed", exception, None)
            return None
        return self._retry_error(request, exception, None)

    def _retry_error(self, request: Request, reason: str | Exception, status: int | None) -> Request | None:
        retried = get_retry_request(request, spider=spider_of(self.crawler), reason=reason,
                                    max_retry_times=self._error_budget(request))
        if retried is None:
            self._give_up(request, reason, status, budget="error")
            return None
        attempt = retried.meta["retry_times"] - 1
        delay = self._policy_for(request).delay(attempt, self.rng, request.meta.get(RETRY_DELAY))
        self._stats("retry/budget/error")
        return self._delayed(retried, delay)

    def _error_budget(self, request: Request) -> int:
        """``RETRY_TIMES`` (or ``meta["max_retry_times"]``), and more while the request's faults have
        lasted less than ``RETRY_FOR_SECONDS`` (``meta["retry_for_seconds"]``): a fault that clears
        within that time costs no data, however many backed-off retries it took."""
        meta = request.meta
        if "max_retry_times" in meta:
            return int(meta["max_retry_times"])
        retry_for = float(meta.get(RETRY_FOR_SECONDS, self.retry_for))
        now = time.time()
        if now - meta.get(FIRST_ATTEMPT_KEY, now) < retry_for:
            return max(self.error_times, meta.get("retry_times", 0) + 1)
        return self.error_times

    def _retry_ratelimited(self, request: Request, response: Response,
                           header: bytes | None) -> Request | None:
        reason = f"{response.status}"
        # Count against the rate-limit budget with Scrapy's helper, keeping the error count intact.
        probe = request.replace(meta={**request.meta, "retry_times": request.meta.get(RATELIMIT_TIMES, 0)})
        limit = request.meta.get(MAX_RATELIMIT_RETRY_TIMES, self.ratelimit_times)
        retried = get_retry_request(probe, spider=spider_of(self.crawler), reason=reason, max_retry_times=limit)
        if retried is None:
            self._give_up(request, reason, response.status, budget="ratelimit")
            return None
        retried.meta[RATELIMIT_TIMES] = retried.meta["retry_times"]
        retried.meta["retry_times"] = request.meta.get("retry_times", 0)
        retry_after = parse_retry_after(header, time.time())
        if retry_after is not None:
            retry_after = min(retry_after, self.retry_after_max)
            self._stats("retry/retry_after_honoured")
        delay, new_event = self.sites.rate_limited(site_of(request), retry_after, self._policy_for(request))
        if new_event:
            self._stats("retry/backoff_events")
            self.crawler.signals.send_catch_log(our_signals.site_backoff, site=site_of(request),
                                                delay=delay, status=response.status)
        self._stats("retry/budget/ratelimit")
        return self._delayed(retried, delay)

    def _delayed(self, request: Request, delay: float) -> Request:
        request.meta[RETRY_DELAY] = delay
        if delay > 0:
            request.meta[DELAY_UNTIL] = time.time() + delay
            self._stats("retry/delayed")
        return request

    def _policy_for(self, request: Request) -> BackoffPolicy:
        meta = request.meta
        if not any(k in meta for k in (RETRY_BACKOFF_BASE, RETRY_BACKOFF_MAX, RETRY_BACKOFF_JITTER)):
            return self.policy
        base = float(meta.get(RETRY_BACKOFF_BASE, self.policy.base))
        return BackoffPolicy(base, max(base, float(meta.get(RETRY_BACKOFF_MAX, self.policy.cap))),
                             meta.get(RETRY_BACKOFF_JITTER, self.policy.jitter))

    def _give_up(self, request: Request, reason: str | Exception, status: int | None, budget: str) -> None:
        self._dead_letter(request, "retry_exhausted", reason, status, budget=budget)

    def _dead_letter(self, request: Request, why: str, reason: str | Exception, status: int | None,
                     **extra: Any) -> None:
        first = request.meta.get(FIRST_ATTEMPT_KEY, time.time())
        self.crawler.signals.send_catch_log(our_signals.dead_letter, record={
            "kind": "request", "reason": why, **extra,
            "error": reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}",
            **our_signals.request_fields(request), "attempts": 1 + attempts(request), "last_status": status,
            "first_attempt_at": datetime.fromtimestamp(first, UTC).isoformat(),
            "last_attempt_at": datetime.now(UTC).isoformat(),
        })

    def _stats(self, key: str) -> None:
        stats_of(self.crawler).inc_value(key)


def _exceptions(settings: Any) -> tuple[type[BaseException], ...]:
    loaded = []
    for entry in settings.getlist("RETRY_EXCEPTIONS"):
        try:
            exc = load_object(entry) if isinstance(entry, str) else entry
        except (ImportError, AttributeError, ValueError, NameError):
            raise InvalidSetting("RETRY_EXCEPTIONS", entry, "importable exception classes") from None
        if not (isinstance(exc, type) and issubclass(exc, BaseException)):
            raise InvalidSetting("RETRY_EXCEPTIONS", entry, "exception classes")
        loaded.append(exc)
    return tuple(loaded)
