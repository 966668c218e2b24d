"""A discrete-event simulation of one site's crawl: a slot driven by the adaptive controller (or a
fixed concurrency, as stock Scrapy), retries, and a modelled site with limits and background faults.

The client behaves like a Scrapy downloader slot driven by the adaptive middleware: at most
``concurrency`` requests in flight and, when paced, starts spaced by ``delay × uniform(1 ± jitter)``.
Retries wait out their delay (``Retry-After`` on a 429, else backoff) without holding the slot, then
go after new requests (Scrapy lowers a retry's priority); a flood of rate limits holds an unpaced slot
until the window's decision, as the middleware does. No Scrapy, no reactor, no wall clock: 1 ms
steps, seeded randomness, so every run is the same.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from localsite.faults import FaultConfig, FaultPlan, TokenBucket
from scraper.backoff import BackoffPolicy
from scraper.concurrency import ControllerConfig, SlotController

STEP = 0.001


class Bucket(TokenBucket):
    """The local site's site-wide token bucket (``rate``/s, ``burst`` stored) on the simulation's
    clock; beyond it, a fast 429 with ``Retry-After: 1``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.now = 0.0  # set by each answer
        super().__init__(rate, int(burst) if burst is not None else 0, clock=lambda: self.now)


class Faults:
    """Background faults, as the local site injects them (its own :class:`FaultPlan`): a ``share``
    of paths fail their first ``times`` requests, each path with one kind (``429`` with
    ``Retry-After``, ``503``, ``500``, ``drop``), whatever the load."""

    def __init__(self, share: float, kinds: tuple[str, ...] = ("503", "429", "drop", "500"), times: int = 2,
                 retry_after: float = 1.0, seed: int = 1, match: Callable[[int], bool] | None = None) -> None:
        self.retry_after = retry_after
        self.match = match  # the paths that may fail (the local site's --fault-match): None, all
        self.plan = FaultPlan(FaultConfig(fault_rate=share, fault_kinds=kinds, fault_times=times,
                                          fault_retry_after=retry_after, seed=seed))

    def fault(self, path: int) -> str | None:
        if self.match is not None and not self.match(path):
            return None
        return self.plan.fault_for(str(path))


@dataclass
class Site:
    """What the crawl talks to: an optional token bucket in front, background faults behind it, then
    ``workers`` servers taking ``service`` seconds each (FIFO: latency grows with queueing), or a
    fixed ``latency`` when ``workers`` is 0."""

    bucket: Bucket | None = None
    faults: Faults | None = None
    latency: float = 0.01
    workers: int = 0
    service: float = 0.0
    _free: list[float] = field(default_factory=list)

    def answer(self, now: float, path: int) -> tuple[str, float, float | None]:
        """``(outcome, done at, Retry-After)``; outcome ``ok``, ``limited`` or ``error``."""
        if self.bucket is not None:
            self.bucket.now = now
            if self.bucket.take() > 0:
                return "limited", now + 0.002, 1.0
        fault = self.faults.fault(path) if self.faults else None
        if fault == "429":
            return "limited", now + 0.002, self.faults.retry_after  # type: ignore[union-attr]
        if fault is not None:
            return "error", now + 0.002, None
        if self.workers:
            if not self._free:
                self._free = [0.0] * self.workers
            start = max(now, heapq.heappop(self._free))
            heapq.heappush(self._free, start + self.service)
            return "ok", start + self.service, None
        return "ok", now + self.latency, None


@dataclass
class Run:
    wall: float = 0.0  # when the last path was done (finite crawls)
    last_new: float = 0.0  # when the last path was first sent (the crawl's pace, without retry tails)
    done: int = 0  # paths fetched successfully
    sent: int = 0
    limited: int = 0
    errors: int = 0
    ok_per_second: Counter[int] = field(default_factory=Counter)
    limited_per_second: Counter[int] = field(default_factory=Counter)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (time, latency) of 200s
    limits: list[tuple[float, int, float]] = field(default_factory=list)  # (time, concurrency, rate)
    controller: SlotController | None = None

    def goodput(self, start: float, end: float) -> float:
        return sum(self.ok_per_second[s] for s in range(int(start), int(end))) / (int(end) - int(start))

    def share_limited(self, start: float = 0, end: float = 1e9) -> float:
        seconds = [s for s in set(self.ok_per_second) | set(self.limited_per_second) if start <= s < end]
        limited = sum(self.limited_per_second[s] for s in seconds)
        return limited / max(1, limited + sum(self.ok_per_second[s] for s in seconds))


def crawl(site: Site, seconds: float, paths: int | None = None, config: ControllerConfig | None = None,
          fixed: int | None = None, honour_retry_after: bool = True, seed: int = 1,
          on_tick: Callable[[float, Site], None] | None = None, kind: Callable[[int], str] | None = None) -> Run:
    """Crawl ``paths`` distinct paths (``None``: endless demand) for at most ``seconds``; ``kind``
    names each path's kind of page (as a spider's callback does).

    ``fixed``: stock Scrapy instead of the controller: that many requests in flight, retries at once
    (``honour_retry_after=False``) or after ``Retry-After``/backoff."""
    rng = random.Random(seed)
    config = config or ControllerConfig()
    controller = None if fixed else SlotController(config, now=0.0)
    policy = BackoffPolicy(0.5, 60.0, "full")
    run = Run(controller=controller)
    retries: list[tuple[float, int, int, int]] = []  # (due, seq, path, attempt)
    completions: list[tuple[float, int, int, int, str, float, float | None]] = []
    next_path, in_flight, seq, now, next_send, next_check = 0, 0, 0, 0.0, 0.0, config.window / 4
    held_until = 0.0
    concurrency, delay = (fixed, 0.0) if fixed else (controller.decision().concurrency, 0.0)  # type: ignore[union-attr]
    while now < seconds:
        if on_tick:
            on_tick(now, site)
        while completions and completions[0][0] <= now:
            _, _, path, attempt, outcome, latency, retry_after = heapq.heappop(completions)
            in_flight -= 1
            if controller is not None:
                controller.record(outcome, latency, in_flight + 1, retry=attempt > 0,
                                  kind=kind(path) if kind else "")
                concurrency = controller.decision().concurrency  # slow start applies at once
                if outcome == "limited" and controller.flooding:  # as the middleware holds a slot
                    controller.flood()
                    held_until = now + controller.window_left(now)
            second = int(now)
            if outcome == "ok":
                run.done += 1
                run.ok_per_second[second] += 1
                run.latencies.append((now, latency))
                if paths is not None and run.done == paths:
                    run.wall = now
                    return run
                continue
            if outcome == "limited":
                run.limited += 1
                run.limited_per_second[second] += 1
            else:
                run.errors += 1
            if not honour_retry_after:
                wait = 0.0
            elif retry_after is not None:
                wait = retry_after
            else:
                wait = policy.delay(attempt, rng)
            heapq.heappush(retries, (now + wait, seq, path, attempt + 1))
            seq += 1
        while in_flight < concurrency and now >= next_send and now >= held_until:
            if paths is None or next_path < paths:  # new requests first: Scrapy gives retries priority -1
                path, attempt, next_path = next_path, 0, next_path + 1
                run.last_new = now
            elif retries and retries[0][0] <= now:
                _, _, path, attempt = heapq.heappop(retries)
            else:
                break
            outcome, done, retry_after = site.answer(now, path)
            heapq.heappush(completions, (done, seq, path, attempt, outcome, done - now, retry_after))
            seq += 1
            in_flight += 1
            run.sent += 1
            if controller is not None:
                controller.saw_in_flight(in_flight)
            if delay:
                next_send = now + delay * rng.uniform(1 - config.pace_jitter, 1 + config.pace_jitter)
        if controller is not None and now >= next_check:  # the middleware's tick: 4 per window
            next_check += config.window / 4
            if controller.due(now):
                decision = controller.decide(now)
                concurrency, delay = decision.concurrency, decision.delay
                run.limits.append((now, concurrency, 1 / delay if delay else 0.0))
        now += STEP
    run.wall = now
    return run
