"""A small discrete-event simulation of one crawler slot against modelled servers (no Scrapy).

The client behaves like a Scrapy downloader slot driven by the adaptive middleware: at most
``concurrency`` requests in flight, and when paced, request starts spaced by
``delay × uniform(1 - pace_jitter, 1 + pace_jitter)``.
Demand is unlimited: there is always another request waiting.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from scraper.concurrency import ControllerConfig, SlotController


class TokenBucketServer:
    """Answers 200 after ``latency`` while tokens last (``rate``/s, ``burst``), else a fast 429."""

    def __init__(self, rate: float, burst: float, latency: float = 0.05) -> None:
        self.rate, self.burst, self.latency = rate, burst, latency
        self.tokens, self.stamp = burst, 0.0

    def arrive(self, now: float) -> tuple[str, float]:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return "ok", now + self.latency
        return "limited", now + 0.005


class WorkerPoolServer:
    """``workers`` servers with fixed ``service`` time, FIFO queue: latency rises with queueing."""

    def __init__(self, workers: int, service: float) -> None:
        self.free_at = [0.0] * workers
        self.service = service

    def arrive(self, now: float) -> tuple[str, float]:
        start = max(now, heapq.heappop(self.free_at))
        done = start + self.service
        heapq.heappush(self.free_at, done)
        return "ok", done


@dataclass
class Result:
    ok: int = 0
    limited: int = 0
    latencies: list[float] = field(default_factory=list)
    limits: list[tuple[float, int]] = field(default_factory=list)

    @property
    def share_limited(self) -> float:
        return self.limited / max(1, self.ok + self.limited)


def simulate(server, seconds: float, config: ControllerConfig | None = None, measure_from: float = 0,
             on_tick: Callable[[float, object], None] | None = None, seed: int = 1,
             until: float | None = None) -> Result:
    """Run the controller against ``server``; count outcomes completed in [measure_from, until)."""
    rng = random.Random(seed)
    config = config or ControllerConfig()
    controller = SlotController(config, now=0.0)
    decision = controller.decision()
    completions: list[tuple[float, int, str, float]] = []
    in_flight, now, next_send, next_window, seq = 0, 0.0, 0.0, config.window, 0
    result, end = Result(), until or seconds
    step = 0.001
    while now < seconds:
        if on_tick:
            on_tick(now, server)
        while completions and completions[0][0] <= now:
            _, _, outcome, latency = heapq.heappop(completions)
            in_flight -= 1
            controller.record(outcome, latency, in_flight + 1)
            if measure_from <= now < end:
                if outcome == "ok":
                    result.ok += 1
                    result.latencies.append(latency)
                else:
                    result.limited += 1
        while in_flight < decision.concurrency and now >= next_send:
            outcome, done = server.arrive(now)
            heapq.heappush(completions, (done, seq, outcome, done - now))
            seq += 1
            in_flight += 1
            controller.saw_in_flight(in_flight)
            if decision.delay:
                jitter = config.pace_jitter
                next_send = now + decision.delay * rng.uniform(1 - jitter, 1 + jitter)
        if now >= next_window:
            decision = controller.decide(now)
            result.limits.append((now, decision.concurrency))
            next_window += config.window
        now += step
    return result
