"""Proxy pool state and selection: pure, Scrapy-free, with an injected clock and random source.

Weighted least connections, not uniform random, so a fast, healthy proxy carries proportionally more traffic
and a failing or slow one less; a banned proxy cools down, then earns its way back on probation.
Behaviour: docs/proxies.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from scraper.backoff import BackoffPolicy
from scraper.secrets import mask_url

#: Weight of the newest observation in the success-rate and latency EWMAs.
EWMA_ALPHA = 0.2
#: Health floor: a proxy that failed a lot keeps a little traffic so it can prove itself again.
MIN_HEALTH = 0.05
#: Latency assumed for a proxy with no measurement yet (seconds): optimistic, so new proxies get tried.
UNMEASURED_LATENCY = 0.0
#: Latency floor when comparing speeds (seconds), so sub-millisecond noise does not decide.
LATENCY_FLOOR = 0.005


class ProxyState(str, Enum):
    GOOD = "good"
    PROBATION = "probation"  # back from a cool-down: one request at a time until a success
    COOLING = "cooling"


@dataclass
class Proxy:
    """One proxy's health. ``url`` may hold credentials; ``name`` never does (use it in logs/stats)."""

    url: str
    name: str
    state: ProxyState = ProxyState.GOOD
    health: float = 1.0
    latency: float = UNMEASURED_LATENCY
    in_flight: int = 0
    requests: int = 0
    successes: int = 0
    failures: int = 0
    bans: int = 0  # consecutive: reset by a success
    cooling_until: float = 0.0
    last_used: float = field(default=0.0)

    def observe_latency(self, seconds: float) -> None:
        if self.latency == UNMEASURED_LATENCY:
            self.latency = seconds
        else:
            self.latency += EWMA_ALPHA * (seconds - self.latency)

    def observe_outcome(self, ok: bool) -> None:
        self.health += EWMA_ALPHA * ((1.0 if ok else 0.0) - self.health)


@dataclass(frozen=True)
class Choice:
    """What :meth:`ProxyPool.choose` decided: a proxy, or ``None`` and how long until one may be free
    (``wait``), and whether every proxy is cooling down (vs. all at their concurrency cap)."""

    proxy: Proxy | None
    wait: float = 0.0
    all_cooling: bool = False


# PROXY_COOLDOWN_BASE / _MAX / _MIN: seconds a banned proxy rests (full-jitter exponential backoff)
DEFAULT_COOLDOWN_BASE = 30.0
DEFAULT_COOLDOWN_MAX = 900.0
DEFAULT_COOLDOWN_MIN = 1.0


class ProxyPool:
    def __init__(self, urls: Iterable[str], *, max_per_proxy: int = 8,
                 cooldown: BackoffPolicy | None = None,
                 min_cooldown: float = DEFAULT_COOLDOWN_MIN, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if max_per_proxy < 1:
            raise ValueError("max_per_proxy must be >= 1")
        self.max_per_proxy = max_per_proxy
        self.cooldown = cooldown or BackoffPolicy(base=DEFAULT_COOLDOWN_BASE, cap=DEFAULT_COOLDOWN_MAX, jitter="full")
        self.min_cooldown = min_cooldown
        self.clock = clock
        self.rng = rng or random.Random()
        self.proxies: dict[str, Proxy] = {}
        self.by_name: dict[str, str] = {}  # masked name -> URL (names are what requests carry)
        self.sessions: dict[str, str] = {}
        self.reanimated = 0
        self.update(urls)

    # -- the list ----------------------------------------------------------------------------------

    def update(self, urls: Iterable[str]) -> tuple[list[str], list[str]]:
        """Make the pool hold exactly ``urls`` (order kept, duplicates dropped). Known proxies keep
        their health; a removed one stops getting requests (those in flight finish normally).
        Returns the masked names added and removed."""
        wanted = list(dict.fromkeys(urls))
        added = [url for url in wanted if url not in self.proxies]
        removed = [self.proxies.pop(url).name for url in list(self.proxies) if url not in wanted]
        self.sessions = {key: url for key, url in self.sessions.items() if url in self.proxies}
        for url in added:
            self.proxies[url] = Proxy(url=url, name=self._unique_name(url))
        self.by_name = {proxy.name: url for url, proxy in self.proxies.items()}
        return [self.proxies[url].name for url in added], removed

    def _unique_name(self, url: str) -> str:
        """The masked URL; two proxies that differ only in their password get ``#2``, ``#3``…"""
        taken = {proxy.name for proxy in self.proxies.values()}
        name, n = mask_url(url), 1
        while name in taken:
            n += 1
            name = f"{mask_url(url)}#{n}"
        return name

    def __len__(self) -> int:
        return len(self.proxies)

    # -- choosing ----------------------------------------------------------------------------------

    def choose(self, session: str | None = None) -> Choice:
        """The proxy for the next request (its in-flight count taken), or why there is none."""
        now = self.clock()
        self._reanimate(now)
        if session is not None:
            sticky = self.proxies.get(self.sessions.get(session, ""))
            if sticky is not None and sticky.state is not ProxyState.COOLING:
                if self._has_room(sticky):
                    return Choice(self._take(sticky, now))
                return Choice(None, wait=0.0)  # wait for its own proxy, not another one
        available = [p for p in self.proxies.values() if p.state is not ProxyState.COOLING]
        candidates = [p for p in available if self._has_room(p)]
        if not candidates:
            if available or not self.proxies:
                return Choice(None, wait=0.0)
            soonest = min(p.cooling_until for p in self.proxies.values())
            return Choice(None, wait=max(0.0, soonest - now), all_cooling=True)
        best_latency = min((p.latency for p in candidates if p.latency != UNMEASURED_LATENCY),
                           default=LATENCY_FLOOR)
        chosen = max(candidates, key=lambda p: (self._score(p, best_latency), -p.in_flight,
                                                -p.last_used))
        if session is not None:
            self.sessions[session] = chosen.url
        return Choice(self._take(chosen, now))

    def _score(self, proxy: Proxy, best_latency: float) -> float:
        latency = max(proxy.latency, LATENCY_FLOOR) if proxy.latency != UNMEASURED_LATENCY else None
        speed = 1.0 if latency is None else max(best_latency, LATENCY_FLOOR) / latency
        return max(proxy.health, MIN_HEALTH) * speed / (1 + proxy.in_flight)

    def _has_room(self, proxy: Proxy) -> bool:
        cap = 1 if proxy.state is ProxyState.PROBATION else self.max_per_proxy
        return proxy.in_flight < cap

    def _take(self, proxy: Proxy, now: float) -> Proxy:
        proxy.in_flight += 1
        proxy.requests += 1
        proxy.last_used = now
        return proxy

    def _reanimate(self, now: float) -> None:
        for proxy in self.proxies.values():
            if proxy.state is ProxyState.COOLING and proxy.cooling_until <= now:
                proxy.state = ProxyState.PROBATION
                self.reanimated += 1

    # -- outcomes ----------------------------------------------------------------------------------

    def release(self, url: str) -> Proxy | None:
        """A request through ``url`` is over (whatever its outcome); ``None`` if the proxy was removed."""
        proxy = self.proxies.get(url)
        if proxy is not None:
            proxy.in_flight = max(0, proxy.in_flight - 1)
        return proxy

    def succeeded(self, url: str, latency: float | None = None) -> None:
        """The proxy delivered a response that was not a ban (a site's 404 or 429 is not its fault)."""
        proxy = self.proxies.get(url)
        if proxy is None:
            return
        proxy.successes += 1
        proxy.bans = 0
        proxy.observe_outcome(True)
        if latency is not None:
            proxy.observe_latency(latency)
        if proxy.state is ProxyState.PROBATION:
            proxy.state = ProxyState.GOOD

    def failed(self, url: str) -> None:
        """A soft failure (a dropped connection): lowers the proxy's health, no cool-down; on
        probation it is a ban, since the proxy has not proved itself yet."""
        proxy = self.proxies.get(url)
        if proxy is None:
            return
        if proxy.state is ProxyState.PROBATION:
            self.banned(url)
            return
        proxy.failures += 1
        proxy.observe_outcome(False)

    def banned(self, url: str) -> float:
        """The proxy is banned or broken: it cools down. Returns the cool-down in seconds."""
        proxy = self.proxies.get(url)
        if proxy is None:
            return 0.0
        proxy.failures += 1
        proxy.bans += 1
        proxy.observe_outcome(False)
        seconds = max(self.min_cooldown, self.cooldown.delay(proxy.bans - 1, self.rng))
        proxy.state = ProxyState.COOLING
        proxy.cooling_until = self.clock() + seconds
        self.sessions = {key: u for key, u in self.sessions.items() if u != url}
        return seconds

    # -- reporting ---------------------------------------------------------------------------------

    def counts(self) -> dict[ProxyState, int]:
        self._reanimate(self.clock())
        counts = {state: 0 for state in ProxyState}
        for proxy in self.proxies.values():
            counts[proxy.state] += 1
        return counts
