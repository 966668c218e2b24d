"""Adaptive per-site concurrency: a pure control law (no Scrapy), measure → decide → act.

Each download slot (site) gets a :class:`SlotController`. The mechanism reports what happened
(:meth:`~SlotController.record`) and asks, once per window, for a decision
(:meth:`~SlotController.decide`): a concurrency (Scrapy's ``Slot.concurrency``) and a pacing delay
(``Slot.delay``; 0 = unpaced). Like TCP on a link:

- **slow start** — a new slot starts at ``start`` and, as in TCP, grows by one for every success
  that comes back while the slot is full (so it doubles per round trip, not per window: on a fast
  site warm-up takes milliseconds, yet never more than twice what was answered is in flight), up to
  the slow-start threshold; afterwards it grows additively (+1 per fully used window);
- **rate limits** (429/503), once per window however many 429s it had — the first time: concurrency
  × ``decrease`` and pacing at the rate the site was accepting × ``rate_decrease``; once paced: the
  rate × ``rate_decrease`` only (concurrency is too coarse a knob: at 3 in flight, halving it costs a
  third of the throughput). While the rate binds it is probed up: by ``rate_probe`` per window just
  under the rate that last drew a 429, faster (the step doubling each window, CUBIC-like) when far
  below it or past it, so an underestimate (the first 429 window holds a ``Retry-After`` pause) is
  recovered in a few windows and the rate settles just under the site's limit. The first 429's
  ceiling is only an estimate (the best accepted rate so far, which slow start may have held down,
  as when the 429 comes early in a crawl): until a 429 at a paced rate confirms it, the rate is
  probed with doubling steps, never settled under it;
- **errors** (timeouts, dropped connections, 5xx overload) — multiplicative decrease in proportion to
  the window's share of errors, as DCTCP does with marked packets: × ``error_decrease`` when every
  request failed, × 0.94 when 20% did (default 0.7); a fully used window where fewer than
  :data:`ERRORS_STILL_GROWING` failed still grows by one (or, when paced and the pace binds, probes
  the rate), so random errors that have nothing to do with load hold the concurrency steady rather
  than cutting it to the floor, and do not freeze a paced rate below the site's limit;
- **pacing jitter** — paced gaps vary by ± ``pace_jitter`` so requests never march in lockstep
  (Scrapy's own 0.5–1.5× randomisation is too bursty for a token bucket);
- **latency** — a gradient against the slot's best recent latency (Gradient2/Vegas spirit):
  ``g = clamp(max(tolerance · best, best + latency_margin) / current, 0.5, 1)``; below 1 the
  concurrency shrinks by ``g``.

All tunables are :class:`ControllerConfig` fields (documented constants), the clock is injected.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

NEAR_CEILING = (0.95, 1.1)  # between these shares of the last 429'd rate, probe by rate_probe only
PROBE_MAX = 0.25  # the fastest rate probe per window (far from any known ceiling)
SETTLED = 0.97  # at or above this share of the ceiling the rate is settled: probe it only...
SETTLED_PROBE_EVERY = 30  # ...once per this many windows (each probe past it costs a 429 and its pause)
ERRORS_STILL_GROWING = 0.5  # a fully used window with errors still grows by 1 if fewer failed than this


@dataclass(frozen=True)
class ControllerConfig:
    min_concurrency: int = 1
    max_concurrency: int = 32
    start: int = 2  # slow start begins here: a crawl never opens with a thundering herd
    decrease: float = 0.5  # concurrency × this on a rate-limited window
    error_decrease: float = 0.7  # concurrency × this on a window whose requests all failed (less if some did)
    tolerance: float = 1.5  # latency may grow to 1.5 × the best recent before backing off...
    latency_margin: float = 0.025  # ...and by at least this many seconds: on loopback, 5 → 20 ms is
    # the crawler's own CPU at work, not a congested server
    rate_decrease: float = 0.93  # paced rate × this on a rate-limited window
    rate_probe: float = 0.005  # paced rate × (1 + this) per window in which the rate binds
    best_windows: int = 120  # "best recent latency" = lowest window median of this many windows
    # (shorter memories let the baseline drift up with the queue they cause: 30 gave 3x latency)
    window: float = 1.0  # seconds between decisions
    pace_jitter: float = 0.1  # each paced gap is delay × uniform(1 - j, 1 + j): no lockstep, few bursts

    def __post_init__(self) -> None:
        if not 1 <= self.min_concurrency <= self.start <= self.max_concurrency:
            raise ValueError("need 1 <= min_concurrency <= start <= max_concurrency")
        for name in ("decrease", "error_decrease", "rate_decrease"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be within (0, 1)")
        if self.tolerance < 1 or self.rate_probe <= 0 or self.window <= 0 or self.latency_margin < 0:
            raise ValueError("need tolerance >= 1, rate_probe > 0, window > 0")
        if not 0 <= self.pace_jitter < 1:
            raise ValueError("pace_jitter must be within [0, 1)")


@dataclass(frozen=True)
class Decision:
    concurrency: int
    delay: float  # seconds between request starts in the slot; 0 = unpaced


@dataclass
class _Window:
    ok: int = 0
    limited: int = 0
    errors: int = 0
    max_in_flight: int = 0
    latencies: list[float] = field(default_factory=list)


class SlotController:
    def __init__(self, config: ControllerConfig, now: float) -> None:
        self.config = config
        self.limit = float(config.start)
        self.threshold = float(config.max_concurrency)  # slow-start threshold
        self.rate: float | None = None  # paced requests/s; None = unpaced
        self.ceiling: float | None = None  # the paced rate that last drew a 429
        # False while the ceiling is only the first 429's estimate (the best window's accepted rate,
        # which slow start may have held down); a 429 at a paced rate confirms it
        self._confirmed = False
        self._step = config.rate_probe
        self._settled = 0  # windows spent settled just under the ceiling
        self._accepted: deque[float] = deque(maxlen=3)  # recent windows' accepted requests/s
        self._window = _Window()
        self._window_start = now
        self._best: deque[float] = deque(maxlen=config.best_windows)
        self.latency_p50 = 0.0
        self.latency_p95 = 0.0
        self.requests = 0
        self.rate_limited = 0

    # measure -------------------------------------------------------------------------------------
    def record(self, outcome: str, latency: float | None = None, in_flight: int = 0) -> None:
        """``outcome``: ``ok`` (a response that is not a rate limit), ``limited`` (429/503) or
        ``error`` (timeout, dropped connection)."""
        window = self._window
        window.max_in_flight = max(window.max_in_flight, in_flight)
        self.requests += 1
        if outcome == "limited":
            window.limited += 1
            self.rate_limited += 1
        elif outcome == "error":
            window.errors += 1
        else:
            window.ok += 1
            if latency is not None:
                window.latencies.append(latency)
            if self.slow_start and not (window.limited or window.errors) and in_flight + 1 >= int(self.limit):
                self.limit = min(self.threshold, self.limit + 1)

    @property
    def slow_start(self) -> bool:
        return self.rate is None and self.limit < self.threshold

    def saw_in_flight(self, in_flight: int) -> None:
        self._window.max_in_flight = max(self._window.max_in_flight, in_flight)

    # decide --------------------------------------------------------------------------------------
    def decide(self, now: float) -> Decision:
        cfg, window = self.config, self._window
        duration = max(now - self._window_start, 1e-6)
        used = window.max_in_flight >= math.floor(self.limit) or self._pacing_bound(window, duration)
        accepted = window.ok / duration
        self._accepted.append(accepted)
        if window.limited:
            self._step = cfg.rate_probe
            if self.rate is None:  # first rate limit: pace at what the site accepted, and back off
                self.ceiling = max(self._accepted)  # the window with the 429 also holds its pause
                self.limit = max(cfg.min_concurrency, self.limit * cfg.decrease)
                self.threshold = self.limit
            else:  # already paced: the rate is the precise knob; cutting concurrency too overshoots
                self.ceiling = self.rate
                self._confirmed = True
            self.rate = max(0.1, self.ceiling * cfg.rate_decrease)
        elif window.errors:
            # DCTCP-like: cut in proportion to the window's share of errors (× error_decrease when
            # all failed), and keep growing while most requests succeed. A site that fails a steady
            # fraction of pages whatever the load then settles where the two balance (20% errors:
            # ~16) instead of being cut every window down to the floor.
            share = window.errors / (window.ok + window.errors)
            self.limit = max(cfg.min_concurrency, self.limit * (1 - (1 - cfg.error_decrease) * share))
            if share < ERRORS_STILL_GROWING:  # grow what binds, as in an error-free window
                if self.rate is not None and self._pacing_bound(window, duration):
                    self._probe()
                elif used:
                    self.limit = min(cfg.max_concurrency, self.limit + 1)
            self.threshold = self.limit
        elif window.ok:
            gradient = self._latency_gradient(window)
            if gradient < 1:
                self.limit = max(cfg.min_concurrency, self.limit * gradient)
                self.threshold = self.limit
            elif self.rate is not None and self._pacing_bound(window, duration):
                self._probe()  # the rate binds: probe it, leave concurrency be
            elif used and not self.slow_start:  # in slow start, successes grow it (record)
                self.limit = min(cfg.max_concurrency, self.limit + 1)
        self._window = _Window()
        self._window_start = now
        return self.decision()

    def _probe(self) -> None:
        """Raise the paced rate: gently around the rate that last drew a 429, faster (the step
        doubling each window, up to ``PROBE_MAX``) when far below it or well past it (stale)."""
        assert self.rate is not None
        low, high = NEAR_CEILING
        near = (self._confirmed and self.ceiling is not None
                and low * self.ceiling <= self.rate <= high * self.ceiling)
        if near and self.ceiling is not None and self.rate >= SETTLED * self.ceiling:
            self._settled += 1
            if self._settled % SETTLED_PROBE_EVERY:
                return
        else:
            self._settled = 0
        self._step = self.config.rate_probe if near else min(PROBE_MAX, self._step * 2)
        self.rate *= 1 + self._step

    def decision(self) -> Decision:
        delay = 1.0 / self.rate if self.rate else 0.0
        return Decision(max(self.config.min_concurrency, int(self.limit)), delay)

    def _pacing_bound(self, window: _Window, duration: float) -> bool:
        """Paced and sending at (nearly) the paced rate: the rate, not the concurrency, binds."""
        sent = window.ok + window.limited + window.errors
        return self.rate is not None and sent >= 0.9 * self.rate * duration

    def _latency_gradient(self, window: _Window) -> float:
        if len(window.latencies) < 3:
            return 1.0
        ordered = sorted(window.latencies)
        current = statistics.median(ordered)
        self.latency_p50 = current
        self.latency_p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        self._best.append(current)
        best = min(self._best)
        allowed = max(self.config.tolerance * best, best + self.config.latency_margin)
        return max(0.5, min(1.0, allowed / current)) if current > 0 else 1.0
