"""A scrapy-redis scheduler with leases, acked only once a request's rows are durable: N workers share
one frontier and a killed worker loses nothing. The design (leases, two-phase checkpoints, journal
recovery, idle-close across workers) is in docs/distributed.md."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Collection
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from scrapy import Request, Spider, signals
from scrapy.core.scheduler import BaseScheduler
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy.utils.asyncio import CallLaterResult, call_later
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.request import request_from_dict
from scrapy_redis import picklecompat
from twisted.internet.defer import Deferred

from scraper import signals as our_signals
from scraper.config import get_bool, get_float, get_int
from scraper.crawling import stats_of
from scraper.distributed import redis_url, state
from scraper.distributed.connection import connect
from scraper.distributed.dupefilter import LeasingDupeFilter, bloom_size
from scraper.distributed.frontier import Frontier, FrontierKeys, Taken
from scraper.distributed.journal import CommitJournal
from scraper.distributed.state import DEFAULT_PREFIX
from scraper.meta import DELAY_UNTIL, LEASE, ROUTED_VIA, VIA_SCHEDULER
from scraper.pipelines import close_crawl
from scraper.scheduler import HoldsDelayedRequests
from scraper.secrets import mask_url, redact
from scraper.timers import Repeating, every, stop

logger = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_IDLE_POLL = 1.0
DRAIN_POLL = 0.01  # seconds between looks at the engine while a checkpoint waits for in-flight work
IDLE_POLL_FIRST = 0.02  # seconds the first empty answer is cached; doubles up to REDIS_IDLE_POLL


class Codec:
    """A request as bytes in Redis and back: Scrapy's ``Request.to_dict`` (callbacks by name) through
    scrapy-redis's pickle serializer, as scrapy-redis's own queues store them."""

    def __init__(self, spider: Spider) -> None:
        self.spider = spider

    def encode(self, request: Request) -> bytes:
        return picklecompat.dumps(request.to_dict(spider=self.spider))

    def decode(self, payload: bytes) -> Request:
        return request_from_dict(picklecompat.loads(payload), spider=self.spider)


class LeasingScheduler(HoldsDelayedRequests, BaseScheduler):
    """The engine-facing scheduler over a shared :class:`Frontier` (scrapy-redis's design, with
    leases): requests and their delays live in Redis, and a request is acked only once its rows
    are durable (a :class:`CommitJournal` commit)."""

    def __init__(self, crawler: Crawler, server: Redis, url: str, *, prefix: str, lease_seconds: float,
                 checkpoint_interval: float, idle_poll: float, persist: bool, drain_timeout: float,
                 prefetch: int,
                 bloom: tuple[int, int] | None, start_urls_key: str) -> None:
        self.server = server
        self.persist = persist
        self.crawler = crawler
        self.stats = crawler.stats
        self.url = url
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.checkpoint_interval = checkpoint_interval
        self.drain_timeout = drain_timeout
        self.prefetch = prefetch
        self.idle_poll = idle_poll
        self.bloom = bloom
        self.start_urls_key = start_urls_key
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held: dict[str, Request] = {}  # lease -> request handed to the engine, until acked
        self.prefetched: deque[Taken] = deque()  # leased, not yet handed out
        self._empty_until = 0.0
        self._empty_streak = 0  # empty answers in a row: how long the next one is cached
        self._counts_cache: tuple[float, bool] = (float("-inf"), True)
        self._loop: Repeating | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = time.monotonic()
        self._last_extend = time.monotonic()
        self._wake: CallLaterResult | None = None
        self._wake_due = 0.0
        self._recovering: asyncio.Future[None] | None = None
        self._lost = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LeasingScheduler:
        s = crawler.settings
        url = redis_url(s)
        assert url, "LeasingScheduler needs REDIS_URL"
        lease = get_float(s, "REDIS_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=1)
        bloom = None
        if get_bool(s, "REDIS_DUPEFILTER_BLOOM", False):
            bloom = bloom_size(get_int(s, "REDIS_BLOOM_CAPACITY", 10_000_000, minimum=1),
                               get_float(s, "REDIS_BLOOM_ERROR_RATE", 0.001, minimum=1e-9, maximum=0.5))
        return cls(crawler, connect(url, s), url,
                   prefix=s.get("REDIS_KEY_PREFIX", DEFAULT_PREFIX),
                   lease_seconds=lease,
                   checkpoint_interval=get_float(s, "REDIS_CHECKPOINT_INTERVAL", 30.0, minimum=0.1),
                   idle_poll=get_float(s, "REDIS_IDLE_POLL", DEFAULT_IDLE_POLL, minimum=0),
                   persist=get_bool(s, "SCHEDULER_PERSIST", False),
                   drain_timeout=get_float(s, "REDIS_CHECKPOINT_DRAIN_TIMEOUT", 30.0, minimum=0),
                   prefetch=get_int(s, "REDIS_PREFETCH", 4, minimum=1, maximum=1000),
                   bloom=bloom,
                   start_urls_key=s.get("REDIS_START_URLS_KEY", "%(name)s:start_urls"))

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self, spider: Spider) -> None:
        self.spider = spider
        namespace = self.namespace = state.namespace(self.prefix, spider.name, vars(spider))
        self.start_urls_key = state.namespace(self.start_urls_key, spider.name, vars(spider),
                                              setting="REDIS_START_URLS_KEY")
        self.keys = state.Keys(namespace)
        self.epoch = state.join_epoch(self.server, self.keys)
        self.frontier = Frontier(self.server, FrontierKeys.under(namespace), lease_seconds=self.lease_seconds,
                                 worker=self.worker)
        self.workers_key = self.keys.workers
        self.codec = Codec(spider)
        self.journal = CommitJournal(self.crawler, self.frontier, self.worker, workers_key=self.workers_key,
                                     lease_seconds=self.lease_seconds, safe=self._safe)
        self.df = LeasingDupeFilter(self.server, f"{namespace}:dupefilter", self.crawler.request_fingerprinter,
                                    debug=self.crawler.settings.getbool("DUPEFILTER_DEBUG"), bloom=self.bloom)
        self.server.zadd(self.workers_key, {self.worker: time.time()})
        self.crawler.signals.send_catch_log(our_signals.hold_publication)
        counts = self.frontier.counts()
        logger.info("Redis frontier %s at %s: %s pending, %s delayed, %s leased; worker %s", namespace,
                    mask_url(self.url), counts.pending, counts.delayed, counts.leased, self.worker)
        self.crawler.signals.connect(self._response_received, signal=signals.response_received)
        self._loop = every(min(self.lease_seconds / 3, self.checkpoint_interval, 1.0), self._tick, now=False)

    def _response_received(self, response: Response, request: Request) -> None:
        """From here on the request is the spider's: its lease is acked by a checkpoint, never
        handed on. (A callback that passes ``meta=response.meta`` to new requests would otherwise
        hand them the lease, and a transfer would ack it before the response's items are durable.)
        Requests a downloader middleware sends back instead (retries, redirects) keep it."""
        request.meta.pop(LEASE, None)

    def close(self, reason: str) -> Deferred[None]:
        stop(self._loop)
        if self._wake is not None:
            self._wake.cancel()
        return deferred_from_coro(self._close(reason))

    async def _close(self, reason: str) -> None:
        """Everything has left the engine and the pipelines have closed their parts: commit it all."""
        if self._recovering is not None:
            await asyncio.gather(self._recovering, return_exceptions=True)
        in_flight = self._in_progress()
        done = [lease for lease, request in self.held.items() if request not in in_flight]
        pending = [lease for lease in self.held if lease not in done] + [t.lease for t in self.prefetched]
        self.prefetched.clear()
        try:
            await self._commit(done)
            released = self.frontier.release(pending)
            if released:
                logger.info("Gave %s unfinished request(s) back to the shared queue", released)
            self.held.clear()
            self.server.zrem(self.workers_key, self.worker)
            self._clear_if_finished(reason)
        except RedisError as exc:
            logger.error("Redis error on close (%s); leases held by this worker expire in %.0f s and "
                         "are then reclaimed", self._safe(exc), self.lease_seconds)
        if self.journal.hidden_parts:
            logger.error("%s part(s) left hidden (.inprogress): their requests are re-run by the next "
                         "worker to find their leases expired, or their journal entry finished",
                         self.journal.hidden_parts)

    def _clear_if_finished(self, reason: str) -> None:
        if self.persist or reason != "finished" or self.frontier.counts().total:
            return
        alive_since = time.time() - 3 * max(self.lease_seconds, self.idle_poll)
        if self.server.zcount(self.workers_key, alive_since, "+inf"):
            # another worker seems alive: it will clear. If it died, the next run finds this mark and does
            self.server.set(self.keys.finished, str(time.time()))
            return
        self.frontier.clear()
        self.server.delete(self.df.key, self.workers_key, self.keys.epoch, self.keys.finished)
        logger.info("Crawl finished: cleared the Redis frontier %s (SCHEDULER_PERSIST is off)", self.namespace)

    # -- the scheduler interface -------------------------------------------------------------------

    def enqueue_request(self, request: Request) -> bool:
        lease = request.meta.pop(LEASE, None)
        request.meta.pop(VIA_SCHEDULER, None)
        if request.meta.get(ROUTED_VIA):  # a rotating proxy's credentials never go to Redis:
            request.headers.pop(b"Proxy-Authorization", None)  # the next attempt is routed anew
        due = request.meta.get(DELAY_UNTIL)
        if due is not None and due <= time.time():
            due = None
        follows = [lease] if lease is not None and lease in self.held else []  # acked by the push
        seen = None if request.dont_filter else self.df.seen_check(request)
        if not self.frontier.enqueue(self.codec.encode(request), request.priority, due, seen=seen, ack=follows):
            self.df.log(request, self.spider)
            return False
        for lease in follows:
            del self.held[lease]
            self._stat("redis/acked")
        self._stat("scheduler/delayed" if due is not None else "scheduler/enqueued/redis")
        self._empty_until = 0.0
        return True

    def next_request(self) -> Request | None:
        now = time.monotonic()
        if now < self._empty_until:
            return None
        if not self.prefetched:
            taken, reclaimed = self.frontier.take(self.prefetch)
            if reclaimed:
                self._stat("redis/reclaimed", reclaimed)
                logger.info("Reclaimed %s request(s) whose lease expired (a worker died or stalled)", reclaimed)
            if not taken and self._seed_from_start_urls():
                taken, _ = self.frontier.take(self.prefetch)
            self.prefetched.extend(taken)
        if not self.prefetched:
            wait = min(self.idle_poll, IDLE_POLL_FIRST * 2 ** min(self._empty_streak, 16))
            self._empty_streak += 1
            due_in = self.frontier.next_due_in
            if due_in is not None and due_in < wait:  # a delayed retry or paced request: wake for it
                wait = due_in
            self._wake_at(wait)
            self._empty_until = now + wait
            if self.held and not self._in_progress():
                self._checkpoint_soon()  # nothing to do here now: ack promptly (no download to pause)
            return None
        self._empty_streak = 0
        lease = self.prefetched.popleft()
        request = self.codec.decode(lease.payload)
        request.meta[LEASE] = lease.lease
        request.meta[VIA_SCHEDULER] = True
        request.meta.pop(DELAY_UNTIL, None)
        self.held[lease.lease] = request
        self._stat("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        now = time.monotonic()
        checked, pending = self._counts_cache
        if now - checked < self.idle_poll:
            return pending
        pending = bool(self.frontier.counts().total or self.server.llen(self.start_urls_key))
        if not pending and self._frontier_lost():
            pending = True  # not idle: closing as "finished" would pass a lost frontier off as done
        self._counts_cache = (now, pending)
        return pending

    def _frontier_lost(self) -> bool:
        """True (once logged, and the crawl closing) when the run's epoch key is gone or replaced:
        Redis lost the frontier and the dupefilter, so what is left to crawl is unknown."""
        if self._lost:
            return True
        if self.server.get(self.keys.epoch) == self.epoch:
            return False
        self._lost = True
        self._stat("redis/frontier_lost")
        logger.error("The Redis frontier %s at %s was lost (its epoch key is gone: Redis restarted "
                     "without persistence, or was flushed); the crawl stops and its dataset is not "
                     "complete. Re-run it after `scrapy redis_reset %s`", self.namespace, mask_url(self.url),
                     self.spider.name)
        close_crawl(self.crawler, "redis_frontier_lost")
        return True

    def __len__(self) -> int:
        counts = self.frontier.counts()
        return counts.pending + counts.delayed + len(self.prefetched)

    # -- leases and checkpoints --------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        try:
            if self._frontier_lost():
                return
            if now - self._last_extend >= self.lease_seconds / 3:
                self._last_extend = now
                self.frontier.extend([*self.held, *(t.lease for t in self.prefetched)])
                self.server.zadd(self.workers_key, {self.worker: time.time()})
                self._recover_soon()
        except RedisError as exc:
            logger.warning("Redis error while extending leases: %s", self._safe(exc))
        if now - self._last_checkpoint >= self.checkpoint_interval:
            self._checkpoint_soon()
        stats = stats_of(self.crawler)
        stats.set_value("redis/held", len(self.held))

    def _checkpoint_soon(self) -> None:
        if self._checkpointing is None or self._checkpointing.done():
            self._checkpointing = asyncio.ensure_future(self._checkpoint())

    async def _checkpoint(self) -> None:
        """Pause new downloads, let what is in flight finish (so every buffered row belongs to a
        finished request), make the rows durable, ack those requests, resume."""
        self._last_checkpoint = time.monotonic()
        if not self.held:
            return
        engine = self.crawler.engine
        engine.pause()
        try:
            deadline = time.monotonic() + self.drain_timeout
            while self._in_progress() and time.monotonic() < deadline:
                await asyncio.sleep(DRAIN_POLL)
            in_flight = self._in_progress()
            if in_flight:  # a very slow download: its rows may land in this part before its ack
                self._stat("redis/checkpoint_drain_timeouts")
            done = [lease for lease, request in self.held.items() if request not in in_flight]
            if not done:
                return
            try:
                await self._commit(done)
            except RedisError as exc:
                logger.warning("Redis error while acking: %s (retried at the next checkpoint)", self._safe(exc))
                return
            self._stat("redis/checkpoints")
            self._forget_empty()  # our own acks changed what Redis would answer: ask again now
        finally:
            engine.unpause()

    async def _commit(self, done: list[str]) -> None:
        """Commit the ``done`` leases (:meth:`CommitJournal.commit`), forget them, publish."""
        await self.journal.commit(done)
        for lease in done:
            self.held.pop(lease, None)
        await self.journal.publish()

    def _recover_soon(self) -> None:
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.ensure_future(self.journal.recover())

    def _engine_slot(self) -> Any:
        try:
            engine = self.crawler.engine
        except RuntimeError:
            return None
        return getattr(engine, "_slot", None) or getattr(engine, "slot", None)

    def _wake_at(self, delay: float) -> None:
        if self._wake is None or self._wake_due > time.monotonic() + delay:
            if self._wake is not None:
                self._wake.cancel()
            self._wake_due = time.monotonic() + delay
            self._wake = call_later(delay, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self._forget_empty()

    def _forget_empty(self) -> None:
        """Drop the cached "nothing to do" answers and let the engine look again at once (instead of
        up to ``REDIS_IDLE_POLL`` later): after a checkpoint this is what lets the last worker close
        as soon as its final acks are in."""
        self._empty_until = 0.0
        self._counts_cache = (float("-inf"), True)
        self._wake_engine()

    def _wake_engine(self) -> None:
        slot = self._engine_slot()
        if slot is not None and getattr(slot, "nextcall", None) is not None:
            slot.nextcall.schedule()

    def _in_progress(self) -> Collection[Request]:
        """Requests the engine is still downloading or scraping (taken from this scheduler), live: read
        it, do not keep it across an ``await``. Scrapy has no public API for this; the engine slot's
        ``inprogress`` set is it (checked by the tests)."""
        return getattr(self._engine_slot(), "inprogress", ())

    def _seed_from_start_urls(self) -> bool:
        """Move URLs fed from outside (``LPUSH <spider>:start_urls``) into the frontier."""
        pipe = self.server.pipeline(transaction=True)
        pipe.lrange(self.start_urls_key, 0, 99)
        pipe.ltrim(self.start_urls_key, 100, -1)
        entries, _ = pipe.execute()
        added = 0
        for entry in entries:
            request = self._start_request(entry)
            if request is not None:
                added += self.enqueue_request(request)
        if entries:
            self._stat("redis/start_urls", len(entries))
        return added > 0

    def _start_request(self, entry: bytes) -> Request | None:
        text = entry.decode("utf-8", "replace").strip()
        try:
            data = json.loads(text) if text.startswith("{") else {"url": text}
            meta = data.get("meta")
            return Request(data["url"], meta=meta if isinstance(meta, dict) else {}, dont_filter=False)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("Ignored a malformed entry of %s: %r (%s)", self.start_urls_key, text[:200], exc)
            self._stat("redis/start_urls_malformed")
            return None

    def _stat(self, key: str, count: int = 1) -> None:
        stats_of(self.crawler).inc_value(key, count)

    def _safe(self, exc: Exception) -> str:
        return redact(str(exc), self.url)


def alive_window(settings: BaseSettings) -> float:
    """Seconds since its last heartbeat within which a worker counts as alive."""
    return 3 * max(get_float(settings, "REDIS_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=1),
                   get_float(settings, "REDIS_IDLE_POLL", DEFAULT_IDLE_POLL, minimum=0))
