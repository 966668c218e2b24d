"""Downloader middleware: adaptive per-site concurrency, the mechanism around :mod:`scraper.concurrency`.

Measures outcomes per download slot on Scrapy's signals (raw statuses before retries rewrite them,
requests that left without a response), asks each slot's controller for a decision every
``ADAPTIVE_WINDOW`` seconds, sets the slot's concurrency and paces starts through the scheduler (an
early request waits there, holding no slot): Scrapy's ``slot.delay`` fires late on a busy loop. The
slot's own delay (``DOWNLOAD_DELAY``...) is kept as a minimum gap. Law, settings and stats: README
and ``docs/adaptive.md``.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response

from scraper import signals as our_signals
from scraper.backoff import RATE_LIMIT_CODES, is_rate_limit
from scraper.concurrency import ControllerConfig, SlotController
from scraper.config import InvalidSetting, get_bool, get_float, get_int, get_status_codes
from scraper.crawling import stats_of
from scraper.meta import DONT_ADAPT, PAGE_KIND, RATELIMIT_TIMES, ROUTED_VIA, send_back, via_scheduler
from scraper.timers import Repeating, every, stop

logger = logging.getLogger(__name__)

OVERLOADED = frozenset({500, 502, 503, 504, 522, 524})
SLOT_KEY = "download_slot"
PACED_AT = "adaptive_paced_at"  # the start time a paced request was given
PACED_EPOCH = "adaptive_paced_epoch"  # the slot's pace epoch it was given in (a slower pace voids it)
RESERVE_WINDOWS = 2  # paced starts are promised at most this many decision windows ahead
LATE_GAPS, LATE_MIN = 2, 0.5  # a paced start missed by more than max(2 gaps, 0.5 s) is taken anew
RELAXED = 0.95  # a pace whose gap shrinks below this share of the last releases the requests waiting for it
TICKS_PER_WINDOW = 4  # the decision loop runs this often a window: a cut's verdict can come early


def is_retry(request: Request) -> bool:
    """A retry (of either budget): its outcome does not count towards the slot's shares."""
    return bool(request.meta.get("retry_times") or request.meta.get(RATELIMIT_TIMES))


def page_kind(request: Request) -> str:
    """The kind of page a request asks for (each kind has its own noise floor): ``meta["page_kind"]``,
    else the name of its callback (a spider's callbacks are its kinds of page)."""
    return str(request.meta.get(PAGE_KIND) or getattr(request.callback, "__name__", "parse"))


def controller_config(crawler: Crawler) -> ControllerConfig:
    s = crawler.settings
    config: dict[str, Any] = dict(
        min_concurrency=get_int(s, "ADAPTIVE_MIN_CONCURRENCY", 1, minimum=1),
        max_concurrency=get_int(s, "ADAPTIVE_MAX_CONCURRENCY", 32, minimum=1),
        start=get_int(s, "ADAPTIVE_START_CONCURRENCY", 2, minimum=1),
        decrease=get_float(s, "ADAPTIVE_DECREASE", 0.5, minimum=0.01, maximum=0.99),
        error_decrease=get_float(s, "ADAPTIVE_ERROR_DECREASE", 0.7, minimum=0.01, maximum=0.99),
        tolerance=get_float(s, "ADAPTIVE_LATENCY_TOLERANCE", 1.5, minimum=1),
        latency_margin=get_float(s, "ADAPTIVE_LATENCY_MARGIN", 0.025, minimum=0),
        rate_decrease=get_float(s, "ADAPTIVE_RATE_DECREASE", 0.93, minimum=0.01, maximum=0.99),
        rate_probe=get_float(s, "ADAPTIVE_RATE_PROBE", 0.01, minimum=0.0001, maximum=1),
        pace_jitter=get_float(s, "ADAPTIVE_PACE_JITTER", 0.1, minimum=0, maximum=0.99),
        window=get_float(s, "ADAPTIVE_WINDOW", 1.0, minimum=0.05),
    )
    if not config["min_concurrency"] <= config["start"] <= config["max_concurrency"]:
        raise InvalidSetting("ADAPTIVE_START_CONCURRENCY", config["start"],
                             "a value within ADAPTIVE_MIN_CONCURRENCY..ADAPTIVE_MAX_CONCURRENCY")
    return ControllerConfig(**config)


class AdaptiveConcurrencyMiddleware:
    def __init__(self, crawler: Crawler, config: ControllerConfig, log_interval: float,
                 ratelimit_codes: frozenset[int] = RATE_LIMIT_CODES, rng: random.Random | None = None) -> None:
        self.crawler = crawler
        self.ratelimit_codes = ratelimit_codes
        self.config = config
        self.log_interval = log_interval
        self.rng = rng or random.Random()
        self.controllers: dict[str, SlotController] = {}
        self._next_start: dict[str, float] = {}  # per-site virtual clock of paced starts
        self._held: dict[str, float] = {}  # slots flooding a limit: no new start until (epoch s)
        self._epoch: dict[str, int] = {}  # per-site count of pace cuts: starts booked before one are void
        # each slot's own delay (DOWNLOAD_DELAY and friends) and jitter (RANDOMIZE_DOWNLOAD_DELAY: ±50%),
        # read when the slot is created; the slot's delay is then set to 0: pacing here honours it
        self._slot_delays: dict[str, tuple[float, float]] = {}
        self._answered: set[int] = set()  # ids of requests that got a response
        self._loop: Repeating | None = None
        self._last_log = self._last_publish = time.monotonic()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AdaptiveConcurrencyMiddleware:
        settings = crawler.settings
        if not get_bool(settings, "ADAPTIVE_CONCURRENCY_ENABLED", True):
            raise NotConfigured("ADAPTIVE_CONCURRENCY_ENABLED is False")
        if get_bool(settings, "AUTOTHROTTLE_ENABLED", False):
            raise InvalidSetting("AUTOTHROTTLE_ENABLED", True,
                                 "False while ADAPTIVE_CONCURRENCY_ENABLED is on (both set slot.delay)")
        mw = cls(crawler, controller_config(crawler),
                 get_float(settings, "ADAPTIVE_LOG_INTERVAL", 60.0, minimum=0),
                 get_status_codes(settings, "RETRY_RATELIMIT_HTTP_CODES", [429]))
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(mw.reached, signal=signals.request_reached_downloader)
        crawler.signals.connect(mw.downloaded, signal=signals.response_downloaded)
        crawler.signals.connect(mw.left, signal=signals.request_left_downloader)
        return mw

    def spider_opened(self) -> None:
        self._loop = every(self.config.window / TICKS_PER_WINDOW, self.tick, now=False)

    def spider_closed(self) -> None:
        stop(self._loop)
        self._publish()

    # act: pacing --------------------------------------------------------------------------------
    def process_request(self, request: Request) -> Request | None:
        meta = request.meta
        if meta.get(DONT_ADAPT) or not via_scheduler(request):
            return None  # opted out, or a direct engine.download() with no scheduler to wait in
        now = time.time()
        key = self.crawler.engine.downloader.get_slot_key(request)
        reserved = meta.pop(PACED_AT, None)
        if meta.pop(PACED_EPOCH, 0) != self._epoch.get(key, 0):
            reserved = None  # booked at a faster pace than today's: void
        held = self._held.get(key)
        if held is not None and now < held:  # flooding a limit: wait for the window's decision
            self._stats("adaptive/held")
            return send_back(request, held + self.rng.uniform(0, 0.05), "paced")
        gap = self._gap(key)
        if not gap:
            return None
        if reserved is not None and now - max(LATE_GAPS * gap, LATE_MIN) <= reserved <= now + 0.001:
            return None  # its reserved start has come
        # Otherwise it needs a (new) start. A reservation missed by more than that is void: the
        # request waited in the queue behind higher-priority ones, and many such late requests
        # going at once would be the burst the pacing exists to prevent.
        start = max(now, self._next_start.get(key, now))
        horizon = RESERVE_WINDOWS * self.config.window + gap
        if start > now + horizon:
            # Too far ahead to promise a start at today's rate (a 429 may cut it, a probe raise it):
            # wait without a reservation and ask again then.
            self._stats("adaptive/paced")
            wait = now + horizon * self.rng.uniform(0.5, 1.0)
            return send_back(request, wait, "paced")
        self._next_start[key] = start + self._jittered(key, gap)
        if start <= now:
            return None
        self._stats("adaptive/paced")
        return send_back(request, start, "paced", **{PACED_AT: start, PACED_EPOCH: self._epoch.get(key, 0)})

    def _gap(self, key: str) -> float:
        """Seconds between starts in the slot: the controller's pace, and never less than the slot's
        own delay (``DOWNLOAD_DELAY``, a spider's ``download_delay``, ``DOWNLOAD_SLOTS``)."""
        controller = self.controllers.get(key)
        paced = 1.0 / controller.rate if controller is not None and controller.rate else 0.0
        return max(paced, self._slot_delays.get(key, (0.0, 0.0))[0])

    def _jittered(self, key: str, gap: float) -> float:
        delay, jitter = self._slot_delays.get(key, (0.0, 0.0))
        if gap > delay or not jitter:  # the pace binds, or the slot's delay is not randomised
            jitter = self.config.pace_jitter
        return gap * self.rng.uniform(1 - jitter, 1 + jitter)

    def _stats(self, key: str) -> None:
        stats_of(self.crawler).inc_value(key)

    # measure -------------------------------------------------------------------------------------
    def reached(self, request: Request) -> None:
        key = request.meta.get(SLOT_KEY)
        if key is None or key in self.controllers:
            return
        controller = self.controllers[key] = SlotController(self.config, time.monotonic())
        slot = self._slot(key)
        if slot is not None:
            self._slot_delays[key] = (float(slot.delay), float(getattr(slot, "jitter", 0.0)))
            self._apply(slot, controller)  # slow start before the slot's first transfer

    def downloaded(self, response: Response, request: Request) -> None:
        self._answered.add(id(request))
        controller = self._controller(request)
        if controller is None:
            return
        status = response.status
        # Classified as the retry layer does; a bare 503 is overload (concurrency shrinks, not the pace).
        if is_rate_limit(status, response.headers.get(b"Retry-After"), self.ratelimit_codes):
            outcome = "limited"
        elif status in OVERLOADED:
            outcome = "error"
        else:
            outcome = "ok"
        before = int(controller.limit)
        controller.record(outcome, request.meta.get("download_latency"), self._in_flight(request),
                          is_retry(request), page_kind(request))
        if outcome == "limited" and controller.flooding:  # no new start until the window's decision
            controller.flood()
            self._held[request.meta.get(SLOT_KEY, "")] = time.time() + controller.window_left(time.monotonic())
        if int(controller.limit) != before:  # slow start grows per success: apply now
            slot = self._slot(request.meta.get(SLOT_KEY, ""))
            if slot is not None:
                self._apply(slot, controller)

    def left(self, request: Request) -> None:
        if id(request) in self._answered:
            self._answered.discard(id(request))
            return
        if request.meta.get(ROUTED_VIA):
            return  # a network error through a rotating proxy is the proxy pool's business, not the site's
        controller = self._controller(request)
        if controller is not None:  # left without a response: timeout, refused, dropped
            controller.record("error", None, self._in_flight(request), is_retry(request), page_kind(request))

    # decide and act ------------------------------------------------------------------------------
    def tick(self) -> None:
        """Decide for every slot whose decision is due (its window passed, or a verdict on a cut
        can come early), and publish the stats once a window."""
        now = time.monotonic()
        for key, controller in self.controllers.items():
            if not controller.due(now):
                continue
            before = controller.decision().delay
            decision = controller.decide(now)
            self._held.pop(key, None)
            if decision.delay > before:  # a slower pace applies at once
                self._void_bookings(key)
            elif before and decision.delay < RELAXED * before:  # so does a much faster one (or none)
                self._void_bookings(key)
                self.crawler.signals.send_catch_log(our_signals.pace_relaxed, slot=key)
            if logger.isEnabledFor(logging.DEBUG):  # four times a window per slot: format only if shown
                logger.debug("Adaptive %s: %s; c=%s rate=%s floor=%.3f", key, controller.last_action,
                             decision.concurrency, f"{1 / decision.delay:.1f}/s" if decision.delay else "unpaced",
                             controller.floor.share)
            slot = self._slot(key)
            if slot is not None:
                self._apply(slot, controller, decision.concurrency, decision.delay)
        if now - self._last_publish >= 0.95 * self.config.window:
            self._last_publish = now
            self._forget_idle()
            self._publish()
        if self.log_interval and now - self._last_log >= self.log_interval:
            self._last_log = now
            self._log_busiest()

    def _forget_idle(self) -> None:
        """Forget the slots Scrapy's downloader forgot (idle for a minute: its ``_slot_gc``), with
        their stats keys, so a broad crawl's per-site state stays bounded; a site that comes back
        starts again from slow start, as its new download slot does."""
        try:
            live = self.crawler.engine.downloader.slots
        except (AttributeError, RuntimeError):
            return  # no engine (a component used on its own)
        forgotten = [key for key in self.controllers if key not in live]
        if not forgotten:
            return
        for key in forgotten:
            for table in (self.controllers, self._next_start, self._held, self._epoch, self._slot_delays):
                table.pop(key, None)
        stats = stats_of(self.crawler)
        prefixes = tuple(f"adaptive/{key}/" for key in forgotten)
        stats.set_stats({name: value for name, value in stats.get_stats().items() if not name.startswith(prefixes)})
        stats.inc_value("adaptive/slots_forgotten", len(forgotten))

    def _void_bookings(self, key: str) -> None:
        """Starts booked at an older, faster pace are void: they are given new ones."""
        self._epoch[key] = self._epoch.get(key, 0) + 1
        self._next_start.pop(key, None)

    def _apply(self, slot: Any, controller: SlotController, concurrency: int | None = None,
               delay: float | None = None) -> None:
        """Set the slot's concurrency. Pacing is done by :meth:`process_request`, so the slot's own
        delay stays 0 (AutoThrottle is off)."""
        slot.concurrency = concurrency if concurrency is not None else controller.decision().concurrency
        slot.delay = 0.0

    def _publish(self) -> None:
        stats = stats_of(self.crawler)
        for key, c in self.controllers.items():
            decision = c.decision()
            prefix = f"adaptive/{key}"
            stats.set_value(f"{prefix}/concurrency", decision.concurrency)
            stats.set_value(f"{prefix}/delay_ms", round(1000 * decision.delay, 1))
            stats.set_value(f"{prefix}/latency_p50_ms", round(1000 * c.latency_p50, 1))
            stats.set_value(f"{prefix}/latency_p95_ms", round(1000 * c.latency_p95, 1))
            stats.set_value(f"{prefix}/rate_limited_share", round(c.rate_limited / max(1, c.requests), 4))
            stats.set_value(f"{prefix}/noise_floor", round(c.floor.share, 4))
            stats.set_value(f"{prefix}/cuts", c.cuts)
            stats.set_value(f"{prefix}/undone", c.undone)

    def _log_busiest(self) -> None:
        busiest = sorted(self.controllers.items(), key=lambda kv: -kv[1].requests)[:3]
        parts = []
        for key, c in busiest:
            decision = c.decision()
            rate = f"{1 / decision.delay:.1f}/s" if decision.delay else "unpaced"
            parts.append(f"{key} c={decision.concurrency} {rate} p50={1000 * c.latency_p50:.0f}ms "
                         f"p95={1000 * c.latency_p95:.0f}ms 429s={100 * c.rate_limited / max(1, c.requests):.1f}% "
                         f"(background {100 * c.floor.share:.1f}%)")
        if parts:
            logger.info("Adaptive concurrency: %s", " | ".join(parts))

    def _controller(self, request: Request) -> SlotController | None:
        if request.meta.get(DONT_ADAPT):
            return None
        return self.controllers.get(request.meta.get(SLOT_KEY, ""))

    def _slot(self, key: str) -> Any:
        return self.crawler.engine.downloader.slots.get(key)

    def _in_flight(self, request: Request) -> int:
        slot = self._slot(request.meta.get(SLOT_KEY, ""))
        return len(slot.transferring) if slot is not None else 0
