"""Retry delays: exponential backoff with jitter, ``Retry-After``, per-site backoff events. No Scrapy.

:class:`SiteBackoff` makes a burst of 429s from one site one backoff event, not one escalation per
concurrent answer; it only times retries (slowing the site is the adaptive controller's decision).
Jitter modes and behaviour: docs/retries.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

JITTERS = ("full", "equal", "decorrelated", "none")
RATE_LIMIT_CODES = frozenset({429})
#: Retries released from one backoff window are spread over this share of the window (at most
#: :data:`SPREAD_MAX` seconds) so they do not all hit the site in the same instant.
SPREAD_SHARE = 0.1
SPREAD_MAX = 1.0


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 0.5
    cap: float = 60.0
    jitter: str = "full"

    def __post_init__(self) -> None:
        if self.jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {JITTERS}")
        if not 0 < self.base <= self.cap:
            raise ValueError("need 0 < base <= cap")

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        """Delay before retry number ``attempt + 1`` (``attempt`` = retries already made)."""
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 64))
        if self.jitter == "full":
            return rng.uniform(0, ceiling)
        if self.jitter == "equal":
            return ceiling / 2 + rng.uniform(0, ceiling / 2)
        if self.jitter == "decorrelated":
            return min(self.cap, rng.uniform(self.base, 3 * max(previous or self.base, self.base)))
        return ceiling


def is_rate_limit(status: int, retry_after: bytes | str | None,
                  codes: frozenset[int] | set[int] = RATE_LIMIT_CODES) -> bool:
    """A rate-limit answer (vs an error): a rate-limit status, or a 503 that says when to come back.
    The retry budgets and the adaptive controller both classify responses with this."""
    return status in codes or (status == 503 and bool(retry_after))


def parse_retry_after(value: bytes | str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110: delta-seconds or an HTTP-date), or
    None when the header is absent or unusable. A date in the past means 0."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def spread(delay: float, rng: random.Random) -> float:
    return rng.uniform(0, min(SPREAD_MAX, SPREAD_SHARE * delay))


@dataclass
class _Site:
    level: int = 0  # backoff events in a row without a success in between
    until: float = 0.0  # the current window ends here (clock time)
    last_delay: float | None = None


class SiteBackoff:
    """Per-site rate-limit backoff windows: measure (429s, successes) → decide (delay) per site."""

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self._sites: dict[str, _Site] = {}

    def rate_limited(self, site: str, retry_after: float | None,
                     policy: BackoffPolicy | None = None) -> tuple[float, bool]:
        """A rate-limit answer from ``site``: ``(delay for this request, new backoff event?)``. With
        ``Retry-After`` the request waits what it was told (it may name one path, not the site);
        without, it waits out the site's current window, or opens a new one, escalated."""
        now = self.clock()
        state = self._sites.setdefault(site, _Site())
        new_event = now >= state.until
        if retry_after is not None:
            wait = retry_after
        elif not new_event:  # part of the burst that opened the current window
            wait = state.until - now
        else:
            wait = (policy or self.policy).delay(state.level, self.rng, state.last_delay)
        if new_event:
            state.level += 1
            state.last_delay = wait
        state.until = max(state.until, now + wait)
        return wait + spread(wait, self.rng), new_event

    def succeeded(self, site: str) -> None:
        state = self._sites.get(site)
        if state is not None and state.level and self.clock() >= state.until:
            state.level = 0

    def level(self, site: str) -> int:
        state = self._sites.get(site)
        return state.level if state else 0
