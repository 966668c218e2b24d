"""Downloader middleware: proxy rotation with health tracking, ban classification and cool-down. Thin
mechanism around the pure pool (scraper.proxies.pool) and ban policy (scraper.proxies.policy); the
download slot stays the site's, so a site's politeness holds across proxies. Behaviour: docs/proxies.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.asyncio import sleep
from scrapy.utils.misc import load_object

from scraper import signals as our_signals
from scraper.backoff import BackoffPolicy
from scraper.config import InvalidSetting, get_bool, get_float, get_int, get_status_codes, split_list
from scraper.crawling import stats_of
from scraper.meta import (
    DONT_ROTATE_PROXY,
    MAX_PROXY_BAN_RETRIES,
    PROXY_BAN_TIMES,
    PROXY_SESSION,
    PROXY_TAKEN,
    ROUTED_VIA,
    send_back,
    via_scheduler,
)
from scraper.proxies.policy import DEFAULT_BAN_CODES, Verdict
from scraper.proxies.pool import (
    DEFAULT_COOLDOWN_BASE,
    DEFAULT_COOLDOWN_MAX,
    DEFAULT_COOLDOWN_MIN,
    Proxy,
    ProxyPool,
    ProxyState,
)
from scraper.proxies.sources import ProxySources
from scraper.timers import Repeating, every, stop

logger = logging.getLogger(__name__)

CAP_WAIT_MAX = 1.0  # all proxies at their cap: wait for a release, looking again at least this often
COOLING_POLL = 0.05  # the least wait for a cooling proxy (engine.download() requests wait in here)
WAIT_LOG_EVERY = 10.0  # seconds between "all proxies cooling down" log lines


class RotatingProxyMiddleware:
    def __init__(self, crawler: Crawler, pool: ProxyPool, sources: ProxySources, policy: Any, *,
                 ban_retry_times: int, fallback_direct: bool, log_interval: float,
                 check_interval: float) -> None:
        self.crawler = crawler
        self.pool = pool
        self.sources = sources
        self.policy = policy
        self.ban_retry_times = ban_retry_times
        self.fallback_direct = fallback_direct
        self.log_interval = log_interval
        self.check_interval = check_interval
        self._loop: Repeating | None = None
        self._last_summary = time.monotonic()
        self._last_wait_log = 0.0
        self._released = asyncio.Event()  # set whenever a proxy's place frees up (or the list changes)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RotatingProxyMiddleware:
        s = crawler.settings
        if not get_bool(s, "PROXY_ENABLED", True):
            raise NotConfigured("PROXY_ENABLED is False")
        file = s.get("PROXY_LIST_FILE")
        sources = ProxySources(listed=split_list(s.get("PROXY_LIST")),
                               file=Path(file) if file else None,
                               env_var=s.get("PROXY_LIST_ENV", "SCRAPER_PROXIES") or None,
                               environ=os.environ)
        urls = sources.load()
        if not urls:
            raise NotConfigured  # no proxies configured: the crawl goes direct (the default, not worth a warning)
        base = get_float(s, "PROXY_COOLDOWN_BASE", DEFAULT_COOLDOWN_BASE, minimum=0.001)
        cap = get_float(s, "PROXY_COOLDOWN_MAX", DEFAULT_COOLDOWN_MAX, minimum=0.001)
        if cap < base:
            raise InvalidSetting("PROXY_COOLDOWN_MAX", cap, "a value >= PROXY_COOLDOWN_BASE")
        pool = ProxyPool(urls, max_per_proxy=get_int(s, "PROXY_MAX_PER_PROXY", 8, minimum=1),
                         cooldown=BackoffPolicy(base=base, cap=cap, jitter="full"),
                         min_cooldown=min(base, get_float(s, "PROXY_COOLDOWN_MIN", DEFAULT_COOLDOWN_MIN, minimum=0)),
                         rng=random.Random())
        policy_path = s.get("PROXY_POLICY", "scraper.proxies.policy.BanPolicy")
        try:
            policy_cls = load_object(policy_path)
        except (ImportError, NameError, ValueError) as exc:
            raise InvalidSetting("PROXY_POLICY", policy_path, f"an importable class ({exc})") from None
        policy = policy_cls(ban_codes=get_status_codes(s, "PROXY_BAN_HTTP_CODES", list(DEFAULT_BAN_CODES)),
                            ban_markers=split_list(s.get("PROXY_BAN_MARKERS")))
        mw = cls(crawler, pool, sources, policy,
                 ban_retry_times=get_int(s, "PROXY_BAN_RETRY_TIMES", 5, minimum=0),
                 fallback_direct=get_bool(s, "PROXY_FALLBACK_DIRECT", False),
                 log_interval=get_float(s, "PROXY_LOG_INTERVAL", 60.0, minimum=0),
                 check_interval=get_float(s, "PROXY_LIST_CHECK_INTERVAL", 5.0, minimum=0.1))
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(mw.left_downloader, signal=signals.request_left_downloader)
        logger.info("Rotating %d proxies: %s", len(pool), ", ".join(p.name for p in pool.proxies.values()))
        return mw

    # -- lifecycle ---------------------------------------------------------------------------------

    def spider_opened(self) -> None:
        self._loop = every(self.check_interval, self.tick, now=False)
        self._publish()

    def spider_closed(self) -> None:
        stop(self._loop)
        self._publish()
        self._log_summary()

    def tick(self) -> None:
        urls = self.sources.reload_if_changed()
        if urls is not None:
            added, removed = self.pool.update(urls)
            self._released.set()
            self._stats_inc("proxy/list_reloads")
            logger.info("Proxy list changed: %d proxies (added: %s; removed: %s)", len(self.pool),
                        ", ".join(added) or "none", ", ".join(removed) or "none")
        self._publish()
        if self.log_interval and time.monotonic() - self._last_summary >= self.log_interval:
            self._log_summary()

    # -- requests ----------------------------------------------------------------------------------

    async def process_request(self, request: Request) -> Request | None:
        meta = request.meta
        if meta.get(DONT_ROTATE_PROXY):
            return None
        if ROUTED_VIA in meta:  # a copy of a request we routed before (retry, redirect): route it anew
            self._forget(request)
        elif meta.get("proxy") is not None:
            return None  # the spider chose a proxy itself
        while True:
            if not len(self.pool):  # the list file was emptied: go direct, as with no proxies at all
                self._stats_inc("proxy/direct")
                return None
            choice = self.pool.choose(meta.get(PROXY_SESSION))
            if choice.proxy is not None:
                self._assign(request, choice.proxy)
                return None
            if choice.all_cooling:
                if self.fallback_direct:
                    self._stats_inc("proxy/direct")
                    return None
                self._log_wait(choice.wait)
                if via_scheduler(request):
                    self._stats_inc("proxy/waited")
                    return send_back(request, time.time() + choice.wait, "proxy")
                await sleep(max(choice.wait, COOLING_POLL))
            else:  # all at their cap: a place frees up when a request through one of them ends
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), CAP_WAIT_MAX)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        routed = self._finished(request)
        if routed is None:
            return response
        name, url = routed
        verdict, reason = self.policy.classify_response(request, response)
        if verdict is Verdict.BAN:
            return self._banned(request, url, name, reason, response) or response
        latency = request.meta.get("download_latency")
        self.pool.succeeded(url, latency)
        return response

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        routed = self._finished(request)
        if routed is None:
            return None
        name, url = routed
        verdict, reason = self.policy.classify_exception(request, exception)
        if verdict is Verdict.BAN:
            return self._banned(request, url, name, reason, None)
        self.pool.failed(url)
        return None  # the retry layer decides

    def left_downloader(self, request: Request) -> None:
        self._release(request)

    # -- mechanism ---------------------------------------------------------------------------------

    def _assign(self, request: Request, proxy: Proxy) -> None:
        request.meta["proxy"] = proxy.url  # HttpProxyMiddleware moves credentials to a header
        request.meta[ROUTED_VIA] = proxy.name
        request.meta[PROXY_TAKEN] = True
        self._stats_inc(f"proxy/requests/{proxy.name}")

    def _forget(self, request: Request) -> None:
        """Drop what a previous routing left on a request copy (its proxy and that proxy's header)."""
        for key in ("proxy", "_auth_proxy", ROUTED_VIA, PROXY_TAKEN):
            request.meta.pop(key, None)
        request.headers.pop(b"Proxy-Authorization", None)

    def _finished(self, request: Request) -> tuple[str, str] | None:
        """A routed request is back: release its place; its proxy's (name, URL), unless it was not
        routed here or its proxy has left the list meanwhile."""
        name = request.meta.get(ROUTED_VIA)
        if name is None:
            return None
        self._release(request)
        url = self.pool.by_name.get(name)
        return None if url is None else (name, url)

    def _release(self, request: Request) -> None:
        if request.meta.pop(PROXY_TAKEN, False):
            url = self.pool.by_name.get(request.meta.get(ROUTED_VIA, ""))
            if url is not None:
                self.pool.release(url)
                self._released.set()

    def _banned(self, request: Request, url: str, name: str, reason: str,
                response: Response | None) -> Request | None:
        """Cool the proxy down and re-route the request; ``None`` once its ban retries are used up
        (a response then goes on to the spider and the request is dead-lettered; an exception goes
        on to the retry layer, which has its own budget and dead-letters what it gives up)."""
        seconds = self.pool.banned(url)
        self._stats_inc(f"proxy/bans/{reason}")
        logger.info("Proxy %s banned (%s) on %s: cooling down for %.0f s", name, reason, request.url, seconds)
        retries = request.meta.get(PROXY_BAN_TIMES, 0) + 1
        limit = request.meta.get(MAX_PROXY_BAN_RETRIES, self.ban_retry_times)
        if retries > limit:
            self._stats_inc("proxy/ban_retries_exhausted")
            logger.warning("Gave up re-routing %s after %d proxy bans (last: %s via %s)",
                           request.url, retries - 1, reason, name)
            if response is not None:
                self.crawler.signals.send_catch_log(our_signals.dead_letter, record={
                    "kind": "request", "reason": "proxy_bans_exhausted", "error": reason, "proxy": name,
                    **our_signals.request_fields(request), "attempts": retries,
                    "last_status": response.status,
                })
            return None
        self._stats_inc("proxy/ban_retries")
        retry = request.replace(dont_filter=True, meta={**request.meta, PROXY_BAN_TIMES: retries})
        self._forget(retry)
        if via_scheduler(request):
            return send_back(retry, time.time(), "proxy")
        return retry

    # -- visibility --------------------------------------------------------------------------------

    def _publish(self) -> None:
        stats = stats_of(self.crawler)
        counts = self.pool.counts()
        stats.set_value("proxy/good", counts[ProxyState.GOOD])
        stats.set_value("proxy/probation", counts[ProxyState.PROBATION])
        stats.set_value("proxy/cooling", counts[ProxyState.COOLING])
        stats.set_value("proxy/reanimated", self.pool.reanimated)

    def _log_summary(self) -> None:
        self._last_summary = time.monotonic()
        counts = self.pool.counts()
        busiest = sorted(self.pool.proxies.values(), key=lambda p: -p.requests)[:5]
        logger.info("Proxy pool: %d good, %d on probation, %d cooling; busiest: %s",
                    counts[ProxyState.GOOD], counts[ProxyState.PROBATION], counts[ProxyState.COOLING],
                    "; ".join(f"{p.name} ({p.requests} req, health {p.health:.2f}, "
                              f"{p.latency * 1000:.0f} ms, {p.in_flight} in flight, {p.state.value})"
                              for p in busiest))

    def _log_wait(self, wait: float) -> None:
        now = time.monotonic()
        if now - self._last_wait_log >= WAIT_LOG_EVERY:
            self._last_wait_log = now
            logger.info("All %d proxies are cooling down: requests wait %.1f s for the first to come "
                        "back (PROXY_FALLBACK_DIRECT is off)", len(self.pool), wait)

    def _stats_inc(self, key: str) -> None:
        stats_of(self.crawler).inc_value(key)
