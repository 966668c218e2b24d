"""Adaptive per-site concurrency: a pure control law (no Scrapy), measure → decide → act.

Each download slot gets a :class:`SlotController`: the mechanism reports every outcome and asks once
a window for a :class:`Decision` (a concurrency and a paced gap). Real sites answer some requests
with 429s, 503s and dropped connections whatever our load, so the law acts only on shares
significantly above the slot's noise floors, and tests every cut it makes: if the 429s persist at a
lower rate they are background, the floor is raised and the cut undone. The law and its constants
are specified in ``docs/adaptive.md``; the clock is injected.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

# Noise floor: a share of rate limits is load-caused only beyond what the floor explains, by more
# than MARGIN of the responses (BBRv2 ignores loss under ~2% per round), Z standard deviations of a
# binomial count at the floor's share, and MIN_EXCESS responses.
MARGIN = 0.02
Z = 3.0
FLOOR_MIN = 0.005  # the least share of rate limits assumed (a floor of 0 would make one 429 significant)
MIN_EXCESS = 2
# The excess is judged on the last EVIDENCE_WINDOWS windows since the last cut, more (up to
# EVIDENCE_MAX_WINDOWS) while they hold fewer than EVIDENCE_MIN first attempts: a slow site's few
# 429s add up to a verdict.
EVIDENCE_WINDOWS = 3
EVIDENCE_MIN = 100
EVIDENCE_MAX_WINDOWS = 10
LEARN_BELOW = 0.9  # windows are folded into the floor at most at this share of the ceiling
FLOOR_MEMORY = 300  # responses: the floor's moving average (of windows without excess) spans about this many
# Background test: after a cut, the answers (at least VERIFY_MIN first attempts and one window, at most
# VERIFY_WINDOWS) show, by a sequential likelihood-ratio test, whether the share of rate limits fell
# as a rate limit's does (the cut stands) or persisted (background). If it persisted, a test cut takes
# the rate to PERSIST_FALL of it; persisting there too, it is background: the floor is raised to it
# and both cuts are undone. Two cuts, not one: a token bucket's burst inflates the first estimate of
# what the site accepts, so the first cut can leave the rate above the limit.
VERIFY_MIN = 30
DECISIVE = math.log(20)  # a verdict once one hypothesis is 20x likelier (else at VERIFY_WINDOWS, the likelier)
VERDICT_AFTER = 0.25  # s: a verdict may come before the window ends, once VERIFY_MIN answers came
# this long after the cut (answers to requests sent before it have come back by then)
VERIFY_WINDOWS = 5
TOOK_HOLD = 0.8  # a cut is judged once the rate sent fell to this share of the rate before it
PERSIST_FALL = 0.5
TEST_BELOW = 0.8  # ...or to this share of the answers that were not rate limits, if higher: a limit's
# rate is at most that, and a test cut held just under it costs less than one at half the rate
HEADROOM = 2.0  # a paced slot may have rate × best latency × this in flight (Little's law), + 1
# Probing the paced rate.
SETTLED = 0.98  # at or above this share of the ceiling the rate is settled...
SETTLE_WINDOWS = 6  # ...for this many windows before probing past the ceiling (capacity may have grown),
SETTLE_REQUESTS = 150  # ...and this many requests (a slow site's probe costs a larger share of them),
SETTLE_MAX_WINDOWS = 15  # ...but never more windows than this
PROBE_MAX = 0.25  # the largest probe step per window
# Rate limits are judged on first attempts, so a window of mostly retries (a crawl's tail) could not
# show that a probe went too far: the rate is probed only while first attempts are this share of answers.
PROBE_EVIDENCE = 0.25
# Past a ceiling (confirmed, or the first estimate), a token bucket's burst hides the overshoot until
# it drains: steps stay under PROBE_BURST until the rate sent beyond the ceiling exceeds BURST_WINDOWS
# windows' worth of it; a rate limit before that cuts back under the old ceiling, none by then makes it stale.
PROBE_BURST = 0.05
BURST_WINDOWS = 1.0
# An unpaced slot is flooding a limit (a token bucket's burst ran out) when its recent answers are
# mostly rate limits: a moving share over about RECENT answers at or above FLOOD_SHARE, with at least
# URGENT rate limits in the window beyond the floor. It is held until the window's decision instead of
# sending hundreds more into the limit.
RECENT = 16
FLOOD_SHARE = 0.75
URGENT = 8
# A site's opening: no rate limiter refuses a new client's first requests (a token bucket's burst, a
# window counter's quota), so rate limits spread through a slot's first OPENING first attempts are
# background, and seed its floor (resting on those few answers). Rate limits that come late in the
# opening (their positions' rank sum OPENING_Z standard deviations above a uniform spread's) are a
# burst running out, and seed nothing; nor does a share of FLOOD_SHARE or more.
OPENING = 100
OPENING_Z = 2.33
# Background is seldom even across a site's pages (product pages behind a throttled backend answer
# 429s, listing pages never do), and a crawl's mix of pages changes as it goes (listing pages first):
# each kind of page with at least OPENING_KIND first attempts in the opening gets a floor of its own.
OPENING_KIND = 20
MAX_KINDS = 32  # kinds of page with a floor of their own, per slot (later ones share the slot's)
HYSTART_SAMPLES = 8  # slow start ends once the median of this many latest latencies shows a queue
ERRORS_STILL_GROWING = 0.5  # a fully used window with errors still grows by 1 if fewer failed than this


@dataclass(frozen=True)
class ControllerConfig:
    min_concurrency: int = 1
    max_concurrency: int = 32
    start: int = 2  # slow start begins here: a crawl never opens with a thundering herd
    decrease: float = 0.5  # concurrency × this on the first load-caused rate limit
    error_decrease: float = 0.7  # concurrency × this on a window whose requests all failed (less if some did)
    tolerance: float = 1.5  # latency may grow to 1.5 × the best recent before backing off...
    latency_margin: float = 0.025  # ...and by at least this many seconds: on loopback, 5 → 20 ms is
    # the crawler's own CPU at work, not a congested server
    rate_decrease: float = 0.93  # paced rate × this (of the rate the site accepted) on a load-caused limit
    rate_probe: float = 0.01  # paced rate × (1 + this) per window just under the ceiling
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
class NoiseFloor:
    """The share of responses that are rate limits whatever our rate (per-path 429s, a flaky edge),
    and how many answers that estimate rests on: a floor measured on a hundred answers is itself
    uncertain, and that uncertainty is noise too."""

    share: float = 0.0
    samples: float = math.inf  # answers behind ``share`` (the default floor is not measured: exact)

    def excess(self, events: int, total: int) -> int:
        """How many of ``events`` (in ``total`` responses) the floor does not explain, or 0 when the
        difference is within noise (the window's binomial spread plus the floor estimate's)."""
        return _beyond_noise(events - self.share * total, total, self.variance(total))

    def variance(self, total: int) -> float:
        """Of the count of background events in ``total`` responses: binomial, and the estimate's."""
        spread = max(self.share, FLOOR_MIN)
        return total * spread * (1 - spread) * (1 + total / self.samples)

    def learn(self, events: int, total: int) -> None:
        if total:
            self.share += (events / total - self.share) * min(1.0, total / FLOOR_MEMORY)
            self.samples = min(FLOOR_MEMORY, self.samples + total) if self.samples < math.inf else math.inf

    def raise_to(self, share: float, samples: float = math.inf) -> None:
        if share > self.share:
            self.share, self.samples = min(0.99, share), samples


def _count(kinds: dict[str, list[int]], kind: str, first: int, limited: int) -> None:
    """Add to ``kinds``' tally (kind of page -> [first attempts, rate limited])."""
    counts = kinds.setdefault(kind, [0, 0])
    counts[0] += first
    counts[1] += limited


def _beyond_noise(beyond: float, total: int, variance: float) -> int:
    """``beyond`` rate limits (of ``total`` answers) more than background explains, if that is more
    than MIN_EXCESS, MARGIN of the answers and Z standard deviations (``variance``); else 0."""
    noise = max(MIN_EXCESS, MARGIN * total, Z * math.sqrt(variance))
    return math.ceil(beyond) if beyond > noise else 0


@dataclass
class _Counts:
    ok: int = 0
    limited: int = 0
    errors: int = 0
    seconds: float = 0.0
    # first attempts apart: a request that drew a per-path 429 is likelier to draw one again, so
    # only first attempts give a share of rate limits that does not depend on how many retries wait
    first: int = 0
    first_limited: int = 0
    first_errors: int = 0
    kinds: dict[str, list[int]] = field(default_factory=dict)  # kind of page: [first attempts, rate limited]

    @property
    def total(self) -> int:
        return self.ok + self.limited + self.errors

    def add(self, other: _Counts) -> None:
        self.ok += other.ok
        self.limited += other.limited
        self.errors += other.errors
        self.seconds += other.seconds
        self.first += other.first
        self.first_limited += other.first_limited
        self.first_errors += other.first_errors
        for kind, (first, limited) in other.kinds.items():
            _count(self.kinds, kind, first, limited)


@dataclass
class _Window(_Counts):
    max_in_flight: int = 0
    latencies: list[float] = field(default_factory=list)


def _tally(opening: Iterable[tuple[str, bool]]) -> dict[str, list[int]]:
    """Kind of page -> [first attempts, rate limited] of an opening's (kind, rate limited?)."""
    by_kind: dict[str, list[int]] = {}
    for kind, was in opening:
        _count(by_kind, kind, 1, was)
    return by_kind


def _later_than_uniform(opening: list[tuple[str, bool]]) -> float:
    """How much later than a uniform spread the rate limits come in ``opening`` (kind, rate limited?),
    in standard deviations: a rank-sum statistic stratified by kind of page (an opening of listing
    pages, then products that answer 429s, has them late overall but not among the products)."""
    positions: dict[str, list[tuple[int, bool]]] = {}
    for at, (kind, was) in enumerate(opening, 1):
        positions.setdefault(kind, []).append((at, was))
    beyond = variance = 0.0
    for answers in positions.values():
        n, hits = len(answers), [at for at, was in answers if was]
        if not hits or len(hits) == n:
            continue
        mean = sum(at for at, _ in answers) / n
        spread = sum((at - mean) ** 2 for at, _ in answers) / n
        beyond += sum(hits) - len(hits) * mean
        variance += len(hits) * (n - len(hits)) / (n - 1) * spread
    return beyond / math.sqrt(variance) if variance else 0.0


@dataclass
class NoiseFloors:
    """A slot's noise floors of rate limits, one per kind of page (see OPENING_KIND), and the slot's
    own over all kinds: the rate limits a set of answers' floors explain is the sum over its kinds,
    and a kind not measured yet has the slot's floor."""

    slot: NoiseFloor = field(default_factory=NoiseFloor)
    kinds: dict[str, NoiseFloor] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.slot.share

    @property
    def samples(self) -> float:
        return self.slot.samples

    def explained(self, counts: _Counts) -> tuple[float, float]:
        """How many of ``counts``' first attempts the floors expect to be rate limits, and the variance."""
        mean = variance = 0.0
        for kind, (first, _) in counts.kinds.items():
            floor = self.kinds.get(kind, self.slot)
            mean += floor.share * first
            variance += floor.variance(first)
        return mean, variance

    def share_of(self, counts: _Counts) -> float:
        """The floors' share of rate limits for ``counts``' mix of pages."""
        return self.explained(counts)[0] / counts.first if counts.first else self.slot.share

    def excess(self, counts: _Counts) -> int:
        """How many of ``counts``' first attempts that were rate limits the floors do not explain."""
        mean, variance = self.explained(counts)
        return _beyond_noise(counts.first_limited - mean, counts.first, variance)

    def learn(self, counts: _Counts) -> None:
        for kind, (first, limited) in counts.kinds.items():
            self._own(kind).learn(limited, first)
        self.slot.learn(counts.first_limited, counts.first)

    def raise_to(self, counts: _Counts, cap: _Counts) -> None:
        """Raise each floor to its share in ``counts``, at most its share in ``cap`` (a kind not in
        ``cap``: the slot's share there): background."""
        def share(first: int, limited: int) -> float:
            return limited / first if first else math.inf

        slot_cap = share(cap.first, cap.first_limited)
        for kind, (first, limited) in counts.kinds.items():
            kind_cap = share(*cap.kinds[kind]) if kind in cap.kinds else slot_cap
            self._own(kind).raise_to(min(share(first, limited), kind_cap), samples=first)
        if counts.first:
            self.slot.raise_to(min(share(counts.first, counts.first_limited), slot_cap), samples=counts.first)

    def seed(self, by_kind: dict[str, list[int]]) -> None:
        """The opening's shares (``by_kind``: kind -> [first attempts, rate limited]), the slot's and
        each kind's with OPENING_KIND first attempts in it."""
        n, limited = sum(c[0] for c in by_kind.values()), sum(c[1] for c in by_kind.values())
        self.slot = NoiseFloor(limited / n, samples=n)
        self.kinds = {kind: NoiseFloor(hits / first, samples=first)
                      for kind, (first, hits) in by_kind.items() if first >= OPENING_KIND}

    def _own(self, kind: str) -> NoiseFloor:
        if kind not in self.kinds:
            if len(self.kinds) >= MAX_KINDS:
                return replace(self.slot)  # (learns nothing that lasts)
            self.kinds[kind] = replace(self.slot)
        return self.kinds[kind]


@dataclass
class _Run:
    """A cut under judgement, then its test cut: the background test."""

    share: float  # share of rate limits before the cut being judged (the first's, then the test cut's)
    first: _Counts  # the evidence that drew the first cut
    sent: float  # requests/s sent before the cut being judged
    undo: tuple[float, float, float | None, float | None, bool]  # limit, threshold, rate, ceiling, confirmed
    accepted: float = 0.0  # requests/s the site accepted after the first cut (set by the test cut)
    min_windows: int = 1  # 2 after a flood: the pause let a token bucket refill, the next window hides it
    elapsed: float = 0.0  # seconds judged so far
    cuts: int = 1
    after: _Counts = field(default_factory=_Counts)  # responses since the last cut
    windows: int = 0


class SlotController:
    def __init__(self, config: ControllerConfig, now: float) -> None:
        self.config = config
        self.limit = float(config.start)
        self.threshold = float(config.max_concurrency)  # slow-start threshold
        self.rate: float | None = None  # paced requests/s; None = unpaced
        self.ceiling: float | None = None  # the rate the site last refused (the estimate of its limit)
        # False while the ceiling is only an estimate from an unpaced window (slow start may have held
        # it down, a token bucket's burst may have pushed it up); a load-caused limit at a paced rate
        # confirms it
        self._confirmed = False
        self.floor = NoiseFloors()  # of rate limits
        self.error_floor = NoiseFloor()  # of errors
        self._recent: deque[_Counts] = deque()  # the last windows since the last cut
        self._run: _Run | None = None
        self._step = config.rate_probe
        self._settled = 0  # windows spent settled just under the ceiling
        self._overshoot = 0.0  # requests sent past a confirmed ceiling while probing it
        self._window_rate: float | None = None  # the rate this window is paced at
        self._window = _Window()
        self._window_start = now
        self._recent_share = 0.0  # moving share of rate limits over about RECENT answers
        self._opening: list[tuple[str, bool]] | None = []  # the first first attempts: kind, rate limited?
        self._flooded = False  # this window flooded a limit
        self._best: deque[float] = deque(maxlen=config.best_windows)
        self._min_latency = math.inf
        self._last_latencies: deque[float] = deque(maxlen=HYSTART_SAMPLES)
        self.latency_p50 = 0.0
        self.latency_p95 = 0.0
        self.requests = 0
        self.rate_limited = 0
        self.action = ""  # what this window did so far, for the debug log
        self.last_action = ""  # what the last decision did
        self.cuts = 0  # rate-limit cuts
        self.undone = 0  # runs of cuts undone: their rate limits were background

    # measure -------------------------------------------------------------------------------------
    def record(self, outcome: str, latency: float | None = None, in_flight: int = 0, retry: bool = False,
               kind: str = "") -> None:
        """``outcome``: ``ok`` (a response that is not a rate limit), ``limited`` (429/503) or
        ``error`` (timeout, dropped connection); ``retry``: the request was a retry; ``kind``: the
        kind of page (each has its own noise floor)."""
        window = self._window
        window.max_in_flight = max(window.max_in_flight, in_flight)
        self.requests += 1
        if not retry:
            window.first += 1
            window.first_limited += outcome == "limited"
            window.first_errors += outcome == "error"
            _count(window.kinds, kind, 1, outcome == "limited")
            self._recent_share += ((outcome == "limited") - self._recent_share) / RECENT
            if self._opening is not None:
                self._opening.append((kind, outcome == "limited"))
                if len(self._opening) == OPENING:
                    self._seed_floor(self._opening)
                    self._opening = None
        if outcome == "limited":
            window.limited += 1
            self.rate_limited += 1
        elif outcome == "error":
            window.errors += 1
        else:
            window.ok += 1
            if latency is not None:
                window.latencies.append(latency)
                self._min_latency = min(self._min_latency, latency)
                self._last_latencies.append(latency)
                if self.slow_start and len(self._last_latencies) == HYSTART_SAMPLES \
                        and statistics.median(self._last_latencies) > self._latency_allowed(self._min_latency):
                    self.threshold = self.limit  # a queue builds (as HyStart): slow start ends here
            failed = window.first_errors + window.first_limited  # (a site's background: well under half)
            if self.slow_start and failed < ERRORS_STILL_GROWING * window.first and in_flight + 1 >= int(self.limit):
                self.limit = min(self.threshold, self.limit + 1)

    def _seed_floor(self, opening: list[tuple[str, bool]]) -> None:
        """Seed the floors with the opening's shares of rate limits if they were spread through it (see
        OPENING) and no cut is being judged (a slow site's first windows may have drawn one)."""
        kinds = _tally(opening)
        limited, n = sum(hits for _, hits in kinds.values()), len(opening)
        if not limited or limited >= FLOOD_SHARE * n or self._run is not None or self.cuts:
            return
        if _later_than_uniform(opening) > OPENING_Z:
            return  # late: a burst ran out
        if any(first >= OPENING_KIND and hits >= FLOOD_SHARE * first for first, hits in kinds.values()):
            return  # a kind refused wholesale: a burst ran out as the crawl turned to it
        self.floor.seed(kinds)

    @property
    def slow_start(self) -> bool:
        return self.rate is None and self.limit < self.threshold

    @property
    def flooding(self) -> bool:
        """Unpaced, and recent answers are mostly rate limits, more than the floor explains (see
        FLOOD_SHARE): the mechanism holds the slot until the window's decision."""
        window = self._window
        return (self.rate is None and self._run is None
                and self._recent_share >= max(FLOOD_SHARE, self.floor.share + MARGIN)
                and window.first_limited >= URGENT
                and self.floor.excess(window) > 0)

    def flood(self) -> None:
        """The mechanism holds the slot: the cut at the window's end is judged over two windows (the
        pause lets a token bucket refill, which would hide it in the next one)."""
        self._recent_share = 0.0
        self._flooded = True

    def due(self, now: float) -> bool:
        """Whether a decision is due: the window has passed, or a cut's verdict can be given early
        (a fast site answers VERIFY_MIN requests in a fraction of a window)."""
        if now - self._window_start >= 0.95 * self.config.window:  # (ticks come a little early or late)
            return True
        run = self._run  # (only for a slot that was unpaced: a fast one, losing most while judged)
        return (run is not None and run.undo[2] is None and run.min_windows == 1
                and now - self._window_start >= VERDICT_AFTER
                and run.after.first + self._window.first >= VERIFY_MIN)

    def window_left(self, now: float) -> float:
        """Seconds until this window's decision is due."""
        return max(0.0, self._window_start + self.config.window - now)

    def saw_in_flight(self, in_flight: int) -> None:
        self._window.max_in_flight = max(self._window.max_in_flight, in_flight)

    # decide --------------------------------------------------------------------------------------
    def decide(self, now: float) -> Decision:
        window = self._window
        window.seconds = max(now - self._window_start, 1e-6)
        self._window, self._window_start = _Window(), now
        self.action = f"{self.action} ok={window.ok} limited={window.limited} errors={window.errors}".lstrip()
        if not self._rate_limits(window):
            self._errors_and_latency(window)
        self._flooded = False
        self.action, self.last_action = "", self.action
        self._window_rate = self.rate
        if self.rate is not None and self._best:  # enough in flight to carry the pace
            needed = self.rate * min(self._best) * HEADROOM + 1
            self.limit = max(self.limit, min(float(self.config.max_concurrency), needed))
        return self.decision()

    def _rate_limits(self, window: _Window) -> bool:
        """Act on rate limits beyond the noise floor: cut, judge a cut, or undo cuts whose rate limits
        were background. False when none of these happened (errors and latency decide)."""
        counts = _Counts(window.ok, window.limited, window.errors, window.seconds, window.first,
                         window.first_limited, window.first_errors, window.kinds)
        if self._run is not None:
            return self._judge(self._run, counts)
        recent = self._recent
        recent.append(counts)
        while len(recent) > EVIDENCE_WINDOWS and (len(recent) > EVIDENCE_MAX_WINDOWS
                                                  or sum(c.first for c in recent) - recent[0].first >= EVIDENCE_MIN):
            self._learn(recent.popleft())
        evidence = _Counts()
        for counts in recent:
            evidence.add(counts)
        excess = self.floor.excess(evidence)
        if not excess:
            return False
        # what the site accepts shows from the first window with rate limits on (a bucket that refuses
        # some passes exactly its rate); the windows before, the rate still rising, would understate it
        first = next((at for at, counts in enumerate(recent) if counts.limited), 0)
        saturated = _Counts()
        for counts in itertools.islice(recent, first, None):
            saturated.add(counts)
        recent.clear()
        return self._start_run(evidence, excess, saturated)

    def _start_run(self, evidence: _Counts, excess: int, saturated: _Counts | None = None) -> bool:
        """Cut for ``excess`` rate limits in ``evidence`` (``saturated``: its windows from the first
        with rate limits), and judge the cut in the next windows."""
        sent, share = evidence.total / evidence.seconds, evidence.first_limited / evidence.first
        self._run = _Run(share, evidence, sent,
                         (self.limit, self.threshold, self.rate, self.ceiling, self._confirmed),
                         min_windows=2 if self._flooded else 1)
        # what the site accepted: every answer but the rate limits beyond the floor (retries' too)
        saturated = saturated or evidence
        background = self.floor.share_of(saturated) * saturated.total
        refused = max(min(excess, saturated.limited), saturated.limited - background)
        self._cut(accepted=max(0.1, (saturated.total - refused) / saturated.seconds))
        self.action += f" -> excess {excess}: cut"
        return True

    def _judge(self, run: _Run, counts: _Counts) -> bool:
        """Judge a cut on the first attempts answered since: a sequential likelihood-ratio test (Wald's
        SPRT) of background against a rate limit. True while the verdict is out, or if it undid it."""
        run.after.add(counts)
        run.windows += 1
        run.elapsed += counts.seconds
        after, expired = run.after, run.elapsed >= (VERIFY_WINDOWS - 0.5) * self.config.window
        if (after.first < VERIFY_MIN or run.windows < run.min_windows) and not expired:
            return True  # hold the rate until the verdict
        sent = after.total / after.seconds  # the pace took hold: the rate fell, or is met
        slowed = sent <= TOOK_HOLD * run.sent or (self.rate is not None and sent <= 1.1 * self.rate)
        evidence = self._background_evidence(run, after)
        # (a verdict of load waits a whole window: the first answers after a cut may be an odd mix of
        # pages, and holding a cut that was right costs nothing; undoing one that was wrong is urgent)
        early = run.elapsed < 0.95 * self.config.window
        if not expired and (evidence > -DECISIVE or early) and (not slowed or evidence < DECISIVE):
            if not slowed:  # (only a slower rate can show a share that persists)
                run.after = _Counts()  # the pace has not taken hold yet (starts booked before the cut)
            return True
        share = after.first_limited / max(1, after.first)
        fell = evidence <= 0
        if fell or not slowed:  # fell to the floor: our load (never slowed: the cut stands too)
            self._run = None
            if fell:  # what is left under the limit is the site's background
                self.floor.learn(after)
            if run.cuts == 2 and self.rate is not None:  # the limit is between the two cuts: pace
                self.ceiling = run.accepted  # at what the site accepted after the first
                self._confirmed = True
                self.rate = max(self.rate, self.config.rate_decrease * run.accepted)
            self.action += " -> the cut stands (load)"
            return False
        _, _, rate_before, ceiling_before, confirmed_before = run.undo
        if confirmed_before and rate_before is not None and ceiling_before is not None \
                and rate_before > ceiling_before:  # drawn by a probe past the known limit: ours
            self._run = None
            self.action += " -> 429s persisted past the known limit: cut again"
            return self._start_run(after, max(1, self.floor.excess(after)))
        if run.cuts == 1:  # persisted: test it at a lower rate, under what the site accepted
            assert self.rate is not None
            excess = max(0.0, after.first_limited - self.floor.explained(after)[0])
            run.accepted = max(0.1, (after.total - excess) / after.seconds)
            answered = (after.ok + after.errors) / after.seconds  # (a limit refuses retries too)
            self.rate = max(0.1, PERSIST_FALL * min(self.rate, sent), TEST_BELOW * answered)
            run.cuts, run.sent, run.share = 2, sent, share  # the test cut is judged against this phase
            run.after, run.windows, run.elapsed = _Counts(), 0, 0.0
            self.action += " -> 429s persisted: test cut"
            return True
        # persisted at half the rate: the site's background (at most the share that drew the first
        # cut: at a low rate retries dominate, and a path that answered 429 is likelier to again)
        self.floor.raise_to(after, cap=run.first)
        self.limit, self.threshold, self.rate, self.ceiling, self._confirmed = run.undo
        self._run = None
        self.undone += 1
        self.action += f" -> 429s persisted: background {share:.2f}, cuts undone"
        return True

    def _background_evidence(self, run: _Run, after: _Counts) -> float:
        """Log-likelihood ratio of ``after``'s rate limits under two models of the site: background
        (the share before the cut persists) against a rate limit R (a share ``1 - R / rate``, so the
        same R at the lower rate, or only the floor once under it). Positive favours background."""
        ratio = run.sent / max(after.total / after.seconds, 1e-9)  # how much the rate fell
        background = run.share
        load = max(self.floor.share_of(after), FLOOR_MIN, 1 - ratio * (1 - run.share))
        if background <= load:
            return -math.inf
        limited, other = after.first_limited, after.first - after.first_limited
        return limited * math.log(background / load) + other * math.log((1 - background) / (1 - load))

    def _learn(self, counts: _Counts) -> None:
        """Fold a window that showed no excess into the floor if its rate was well below the
        ceiling (near it, a few 429s of our own would raise the floor, and the floor the tolerance)."""
        if self.rate is None or self.ceiling is None or self.rate <= LEARN_BELOW * self.ceiling:
            self.floor.learn(counts)

    def _cut(self, accepted: float) -> None:
        """Pace at what the site accepted (everything it answered but the excess rate limits)."""
        cfg = self.config
        self._step = cfg.rate_probe
        self._settled = 0
        if self.rate is None:  # the first: pace, and back off concurrency
            self.ceiling = accepted
            self.limit = max(cfg.min_concurrency, self.limit * cfg.decrease)
            self.threshold = self.limit
        elif self._confirmed and self.ceiling is not None and self.rate > self.ceiling:
            # a probe past the ceiling drew it while a burst could still hide the overshoot: the
            # site accepted no more than before (what it seemed to is the burst)
            self.ceiling = min(self.ceiling, accepted)
        else:  # paced: the rate is the precise knob; cutting concurrency too overshoots
            self._confirmed = True
            self.ceiling = min(self.rate, accepted)
        self._overshoot = 0.0
        self.rate = max(0.1, self.ceiling * cfg.rate_decrease)
        self.cuts += 1

    def _errors_and_latency(self, window: _Window) -> None:
        cfg = self.config
        gradient = self._latency_gradient(window)
        full = window.max_in_flight >= math.floor(self.limit)  # concurrency binds
        paced = self._pacing_bound(window)  # the pace binds
        # Errors beyond their own noise floor (first attempts: a failing path fails more) cut the
        # concurrency in proportion to their share, as DCTCP does (× error_decrease when all failed);
        # a window where fewer than half failed still grows what binds. A site that fails a steady
        # share of pages whatever the load learns it as its floor and is not slowed by it.
        share = window.first_errors / window.first if window.first else 0.0
        excess = max(0.0, share - self.error_floor.share - MARGIN)
        if window.first:
            self.error_floor.learn(window.first_errors, window.first)
        if excess:
            self.limit = max(cfg.min_concurrency, self.limit * (1 - (1 - cfg.error_decrease) * excess))
            self.threshold = self.limit
            if share >= ERRORS_STILL_GROWING:
                return
        elif gradient < 1:
            self.limit = max(cfg.min_concurrency, self.limit * gradient)
            self.threshold = self.limit
            return
        elif self.slow_start:  # successes grow it (record)
            return
        # grow what binds: the pace, the concurrency, or both (a pace the concurrency cannot carry)
        if paced and window.first >= PROBE_EVIDENCE * window.total:
            self._probe(window.seconds)
        if full:
            self.limit = min(cfg.max_concurrency, self.limit + 1)

    def _probe(self, seconds: float) -> None:
        """Raise a paced rate that binds. Under a confirmed ceiling: by ``rate_probe`` a window near
        it (steps doubling far below it), up to ``SETTLED`` of it; settled there for
        ``SETTLE_WINDOWS``, past it with steps doubling from 1%, as past a ceiling that is only an
        estimate (under ``PROBE_BURST`` until a burst could no longer hide the overshoot). A site
        whose capacity grew is found in a few windows; one that did not costs a few 429s."""
        assert self.rate is not None
        cfg, ceiling, step_max = self.config, self.ceiling, PROBE_MAX
        if self._confirmed and ceiling is not None:
            if self.rate < SETTLED * ceiling:
                near = self.rate >= 0.9 * ceiling
                self._step = cfg.rate_probe if near else min(PROBE_MAX, self._step * 2)
                self.rate = min(SETTLED * ceiling, self.rate * (1 + self._step))
                self._settled = 0
                return
            if self._settled < max(SETTLE_WINDOWS, min(SETTLE_MAX_WINDOWS, SETTLE_REQUESTS / (ceiling * cfg.window))):
                self._settled += 1
                self._step = cfg.rate_probe
                return
        if ceiling is not None and (self._confirmed or self.rate >= ceiling):
            self._overshoot += max(0.0, self.rate - ceiling) * seconds
            if self._overshoot < BURST_WINDOWS * ceiling * cfg.window:
                step_max = PROBE_BURST
            else:  # sustained past the ceiling: the site's capacity grew, the ceiling is stale
                self._confirmed = False
        self._step = min(step_max, self._step * 2)
        self.rate *= 1 + self._step

    def decision(self) -> Decision:
        delay = 1.0 / self.rate if self.rate else 0.0
        return Decision(max(self.config.min_concurrency, int(self.limit)), delay)

    def _pacing_bound(self, window: _Window) -> bool:
        """Paced and sending at (nearly) the rate the window was paced at: the rate, not the
        concurrency, binds."""
        paced = self._window_rate if self._window_rate is not None else self.rate
        return paced is not None and window.total >= 0.9 * paced * window.seconds

    def _latency_gradient(self, window: _Window) -> float:
        if len(window.latencies) < 3:
            return 1.0
        ordered = sorted(window.latencies)
        current = statistics.median(ordered)
        self.latency_p50 = current
        self.latency_p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        self._best.append(current)
        # (the least single latency too: when slow start already queued in the first windows,
        # every window's median is a queue's)
        allowed = self._latency_allowed(min(min(self._best), self._min_latency))
        return max(0.5, min(1.0, allowed / current)) if current > 0 else 1.0

    def _latency_allowed(self, best: float) -> float:
        """The latency past which the site is queueing our requests."""
        return max(self.config.tolerance * best, best + self.config.latency_margin)
