"""A scheduler that can hold a request until a time, so that delayed retries and paced starts occupy
no download slot: a request whose ``meta["delay_until"]`` is in the future waits in a delay store,
then goes back through ``engine.crawl()``. Waiting requests keep the spider open; at a stop they go
to JOBDIR's disk queue, or are dead-lettered. Behaviour and stats: docs/retries.md."""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from scrapy import Request
from scrapy.core.scheduler import Scheduler
from scrapy.crawler import Crawler
from scrapy.utils.asyncio import CallLaterResult, call_later

from scraper import signals as our_signals
from scraper.config import InvalidSetting
from scraper.crawling import stats_of
from scraper.distributed import redis_url
from scraper.meta import DELAY_REASON, DELAY_UNTIL, VIA_SCHEDULER, attempts, delay_reason

logger = logging.getLogger(__name__)

class HoldsDelayedRequests:
    """What the retry, adaptive and proxy middlewares rely on, as a base class the scheduler
    declares: a request whose ``meta["delay_until"]`` (epoch seconds) is in the future is kept out of
    the downloader until then (holding no slot), the scheduler reports pending work meanwhile, and
    it sets ``meta[VIA_SCHEDULER]`` on the requests it hands out. :class:`DelayingScheduler` (in
    memory) and :class:`scraper.distributed.scheduler.LeasingScheduler` (in Redis) both are."""


class DelayStore(Protocol):
    def push(self, request: Request, due: float) -> None: ...
    def pop_due(self, now: float) -> list[Request]: ...
    def take(self, predicate: Callable[[Request], bool]) -> list[Request]: ...
    def next_due(self) -> float | None: ...
    def drain(self) -> list[Request]: ...
    def __len__(self) -> int: ...


class MemoryDelayStore:
    """Delayed requests in a heap ordered by due time (FIFO among equal times)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Request]] = []
        self._order = itertools.count()

    def push(self, request: Request, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), request))

    def pop_due(self, now: float) -> list[Request]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        return due

    def take(self, predicate: Callable[[Request], bool]) -> list[Request]:
        """Remove and return the waiting requests ``predicate`` selects, whenever they are due."""
        taken: list[Request] = []
        kept = []
        for entry in self._heap:
            if predicate(entry[2]):
                taken.append(entry[2])
            else:
                kept.append(entry)
        if taken:
            self._heap = kept
            heapq.heapify(self._heap)
        return taken

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def drain(self) -> list[Request]:
        requests = [entry[2] for entry in sorted(self._heap)]
        self._heap.clear()
        return requests

    def __len__(self) -> int:
        return len(self._heap)


class DelayedRequestsMixin(HoldsDelayedRequests):
    """Adds ``delay_until`` support to a Scrapy scheduler class (Scrapy's own or scrapy-redis's)."""

    crawler: Crawler
    delay_store: DelayStore
    _timer: CallLaterResult | None
    _pending_max: int

    def _init_delays(self, crawler: Crawler, store: DelayStore | None = None) -> None:
        self.crawler = crawler
        self.delay_store = store if store is not None else MemoryDelayStore()
        self._timer = None
        self._timer_due = 0.0
        self._pending_max = 0
        self._waiting: Counter[str] = Counter()  # delayed requests by reason
        crawler.signals.connect(self._pace_relaxed, signal=our_signals.pace_relaxed)

    def enqueue_request(self, request: Request) -> bool:
        due = request.meta.get(DELAY_UNTIL)
        if due is not None and due > time.time():
            self.delay_store.push(request, due)
            self._waiting[delay_reason(request)] += 1
            self._count_pending()
            self.crawler.stats.inc_value("scheduler/delayed")
            self._arm()
            return True
        return super().enqueue_request(request)  # type: ignore[misc]

    def next_request(self) -> Request | None:
        request = super().next_request()  # type: ignore[misc]
        if request is not None:
            request.meta[VIA_SCHEDULER] = True
        return request

    def has_pending_requests(self) -> bool:
        return bool(len(self.delay_store)) or super().has_pending_requests()  # type: ignore[misc]

    def __len__(self) -> int:
        return super().__len__() + len(self.delay_store)  # type: ignore[misc]

    def close(self, reason: str) -> Any:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        abandoned = [request for request in self.delay_store.drain() if not self._persist(request)]
        if abandoned:
            logger.warning("Abandoned %s delayed request(s) on close (%s); dead-lettered",
                           len(abandoned), reason)
            stats = stats_of(self.crawler)
            stats.inc_value("scheduler/delayed_abandoned", len(abandoned))
            for request in abandoned:
                self.crawler.signals.send_catch_log(our_signals.dead_letter, record={
                    "kind": "request", "reason": "delayed_abandoned", "close_reason": reason,
                    **our_signals.request_fields(request),
                    "attempts": attempts(request),
                    "due_at": request.meta.get(DELAY_UNTIL),
                })
            self._waiting.clear()
            self._count_pending()
        return super().close(reason)  # type: ignore[misc]

    def _persist(self, request: Request) -> bool:
        """With ``JOBDIR``, a delayed request goes to Scrapy's disk queue, for the resumed run to fetch
        (whenever it resumes: the wait is over by then); False where there is no disk queue, or it
        cannot hold the request."""
        if getattr(self, "dqs", None) is None:
            return False
        meta = {k: v for k, v in request.meta.items() if k not in (DELAY_UNTIL, DELAY_REASON, VIA_SCHEDULER)}
        if not self._dqpush(request.replace(meta=meta)):  # type: ignore[attr-defined]
            return False
        self.crawler.stats.inc_value("scheduler/delayed_persisted")
        return True

    def _arm(self) -> None:
        """Wake at the earliest due time (one timer at a time, moved earlier when needed)."""
        due = self.delay_store.next_due()
        if due is None:
            return
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = call_later(max(0.0, due - time.time()), self._release)

    def _release(self) -> None:
        self._timer = None
        for request in self.delay_store.pop_due(time.time()):
            self._requeue(request)
        self._count_pending()
        self._arm()

    def _requeue(self, request: Request) -> None:
        """A delayed request back into the normal queue (wakes the engine)."""
        self._waiting[delay_reason(request)] -= 1
        request.meta.pop(DELAY_UNTIL, None)
        request.meta.pop(DELAY_REASON, None)
        self.crawler.engine.crawl(request)

    def _pace_relaxed(self, slot: str) -> None:
        """Requests waiting for a paced start in ``slot`` go now (to be paced anew at the new pace)."""
        released = self.delay_store.take(
            lambda r: delay_reason(r) == "paced" and r.meta.get("download_slot") == slot)
        for request in released:
            self._requeue(request)
        if released:
            self._count_pending()

    def _count_pending(self) -> None:
        retries = self._waiting["retry"]
        self._pending_max = max(self._pending_max, retries)
        stats = stats_of(self.crawler)
        stats.set_value("retry/pending", retries)
        stats.set_value("retry/pending_max", self._pending_max)
        stats.set_value("scheduler/waiting", len(self.delay_store))  # retries, paced starts, ...
        stats.set_value("adaptive/pending", self._waiting["paced"])


class DelayingScheduler(DelayedRequestsMixin, Scheduler):  # type: ignore[misc]  # (Scheduler's crawler is optional)
    """Scrapy's default scheduler plus delayed requests: ``SCHEDULER`` as the add-on
    (:mod:`scraper.addon`) sets it for a crawl without Redis."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        if redis_url(crawler.settings):  # set by hand: the crawl would quietly not be distributed
            raise InvalidSetting("SCHEDULER", crawler.settings["SCHEDULER"],
                                 "scraper.distributed.scheduler.LeasingScheduler, as REDIS_URL is set "
                                 "(or leave SCHEDULER unset: the add-on picks it)")
        scheduler = super().from_crawler(crawler)
        scheduler._init_delays(crawler)
        return scheduler
