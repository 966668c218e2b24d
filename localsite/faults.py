"""Fault injection for the local site: pure, Scrapy-free decisions with an injected clock.

Faults are deterministic per path (chosen by a hash of seed and path), and transient (a faulty path
fails its first ``times`` requests, then serves normally), so a test can assert that a crawler which
retries correctly delivers every book exactly once.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields

FAULT_KINDS = ("500", "503", "429", "429-date", "drop")
RETRY_AFTER_FORMS = ("seconds", "date", "none")
BAN_PAGES = ("403", "captcha")


def unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) for ``parts``."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class FaultConfig:
    """Every knob of the local site. All default to off."""

    latency_ms: float = 0.0  # added to every normal response
    latency_jitter_ms: float = 0.0  # plus uniform(0, jitter)
    workers: int = 0  # requests served at once (each taking latency_ms); more wait in a queue; 0 = any
    rate_limit: float = 0.0  # token bucket, requests/s over the whole site; 0 = unlimited
    burst: int = 0  # bucket size; 0 = max(1, rate_limit)
    retry_after: str = "seconds"  # form of Retry-After on rate-limit 429s: seconds|date|none
    fault_rate: float = 0.0  # fraction of paths that fail transiently
    fault_kinds: tuple[str, ...] = ("500", "503", "429", "drop")
    fault_times: int = 1  # how many first requests of a faulty path fail
    fault_retry_after: float = 1.0  # Retry-After (s) on injected 429s
    fault_match: str = ""  # regex: only paths matching it can fault ("" = any path)
    malformed_rate: float = 0.0  # fraction of product pages served without their UPC row
    malformed_price: str = ""  # ... or with their UPC, and this price text instead (e.g. "£1.005")
    malformed_pad_kb: int = 0  # ... or with their UPC, padded with this many KiB (an oversize page)
    ban_clients: tuple[str, ...] = ()  # client IPs that are banned (e.g. one proxy's exit address)
    ban_page: str = "403"  # what a banned client gets: 403, or "captcha" (a 200 captcha page)
    robots_disallow: str = ""  # robots.txt "Disallow:" for every user agent ("/" = the whole site)
    seed: int = 1

    def __post_init__(self) -> None:
        self.fault_kinds = tuple(self.fault_kinds)
        self.ban_clients = tuple(self.ban_clients)
        if self.ban_page not in BAN_PAGES:
            raise ValueError(f"ban_page must be one of {BAN_PAGES}")
        bad = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; choose from {FAULT_KINDS}")
        if self.retry_after not in RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after must be one of {RETRY_AFTER_FORMS}")
        try:
            re.compile(self.fault_match)
        except re.error as exc:
            raise ValueError(f"fault_match is not a regex: {exc}") from None
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        for name in ("fault_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")

    def updated(self, changes: dict[str, object]) -> FaultConfig:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return FaultConfig(**values)


class TokenBucket:
    """``rate`` tokens/s, at most ``burst`` stored. ``take`` returns 0 or the wait for the next token."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst or max(1.0, rate))
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def take(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0 - 1e-9:  # tolerate float drift: 0.1 s at 10/s is one token
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass
class FaultPlan:
    """Decides, per request, whether a path fails and how."""

    config: FaultConfig
    attempts: Counter[str] = field(default_factory=Counter)

    def fault_for(self, path: str) -> str | None:
        cfg = self.config
        if not cfg.fault_rate or path == "robots.txt" or path.startswith("_"):
            return None
        if cfg.fault_match and not re.search(cfg.fault_match, path):
            return None
        self.attempts[path] += 1
        if unit_hash(cfg.seed, "fault", path) >= cfg.fault_rate:
            return None
        if self.attempts[path] > cfg.fault_times:
            return None
        kinds = cfg.fault_kinds
        return kinds[int(unit_hash(cfg.seed, "kind", path) * len(kinds))]

    def is_malformed(self, path: str) -> bool:
        return is_malformed(self.config.seed, path, self.config.malformed_rate)


def is_malformed(seed: int, path: str, rate: float) -> bool:
    """Whether the site serves ``path`` (a product page) without its UPC row."""
    return bool(rate) and unit_hash(seed, "malformed", path) < rate


def retry_after_value(seconds: float, form: str, now: float | None = None) -> str | None:
    """``Retry-After`` in delta-seconds or HTTP-date form (RFC 9110), rounded up to whole seconds."""
    if form == "none":
        return None
    whole = max(1, math.ceil(seconds))
    if form == "seconds":
        return str(whole)
    from email.utils import formatdate

    return formatdate(math.ceil(time.time() if now is None else now) + whole, usegmt=True)
