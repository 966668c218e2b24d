"""Downloader middleware: User-Agent rotation through scrapy-fake-useragent, without its pitfalls.

scrapy-fake-useragent 1.4.4's ``RandomUserAgentMiddleware`` on Scrapy 2.19 with fake-useragent 2.x:
a provider that fails to load is logged at INFO and replaced by Scrapy's own UA; a list setting
given as a string (``-s``, Scrapyd) is read character by character; ``process_request(request,
spider)`` is deprecated; ``RANDOM_UA_PER_PROXY`` logs proxy URLs with their passwords; and its retry
middleware is broken. This subclass keeps its provider API and fixes those:

- ``FAKEUSERAGENT_PROVIDERS`` (list or comma-separated string) are tried in order; if none loads, the
  crawl fails at start-up naming the setting. Never Scrapy's default UA.
- ``USERAGENT_STICKY``: ``none`` (a fresh UA per request), ``session`` (one UA per
  ``meta["proxy_session"]``) or ``proxy`` (one UA per rotating proxy; ``RANDOM_UA_PER_PROXY=True``
  means this). A retried request gets a fresh UA (a sticky key gets a new one).
- A ``User-Agent`` header the spider set itself is kept; ``meta["dont_rotate_user_agent"]`` opts out.
- ``USERAGENT_ROTATION_ENABLED = False`` falls back to Scrapy's ``UserAgentMiddleware`` (``USER_AGENT``).

Stats: ``useragent/rotated``, ``useragent/renewed`` (a sticky key's UA replaced on a retry).
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.useragent import UserAgentMiddleware
from scrapy.utils.misc import load_object
from scrapy_fake_useragent.middleware import RandomUserAgentMiddleware

from scraper.config import InvalidSetting, get_bool, get_choice, split_list
from scraper.crawling import stats_of
from scraper.meta import DONT_ROTATE_USER_AGENT, PROXY_SESSION, ROUTED_VIA, UA_ROTATED, attempts

logger = logging.getLogger(__name__)

STICKY_MODES = ("none", "session", "proxy")
DEFAULT_PROVIDERS = ["scraper.useragents.BrowserUserAgentProvider"]
FRESH_DRAWS = 20  # draws to find a UA different from the one a retried request had


class RotatingUserAgentMiddleware(RandomUserAgentMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        super().__init__(crawler)
        settings = crawler.settings
        sticky = get_choice(settings, "USERAGENT_STICKY", "none", STICKY_MODES)
        if get_bool(settings, "RANDOM_UA_PER_PROXY", False):
            sticky = "proxy"
        self.sticky = sticky
        self._per_proxy = False  # the parent's per-proxy path logs proxy URLs: never used
        self._by_key: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RotatingUserAgentMiddleware | UserAgentMiddleware:
        if not get_bool(crawler.settings, "USERAGENT_ROTATION_ENABLED", True):
            # Scrapy's own (which this one replaces in the settings): a polite crawler always says
            # who it is, with USER_AGENT
            logger.info("User-Agent rotation is off: every request says USER_AGENT")
            return UserAgentMiddleware.from_crawler(crawler)
        return cls(crawler)

    def _get_provider(self, crawler: Crawler) -> Any:
        paths = split_list(crawler.settings.get("FAKEUSERAGENT_PROVIDERS")) or DEFAULT_PROVIDERS
        self.providers_paths = paths
        errors = []
        for path in paths:
            try:
                provider = load_object(path)(crawler.settings)
            except InvalidSetting:
                raise
            except Exception as exc:  # a provider can fail in any way; say how, then try the next
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
                logger.warning("User-Agent provider %s failed to load: %s: %s", path, type(exc).__name__, exc)
                continue
            logger.info("User-Agent provider: %s", path)
            return provider
        raise InvalidSetting("FAKEUSERAGENT_PROVIDERS", paths,
                             "at least one provider that loads (" + "; ".join(errors) + ")")

    def process_request(self, request: Request) -> None:
        meta = request.meta
        if meta.get(DONT_ROTATE_USER_AGENT):
            return None
        if UA_ROTATED not in meta and b"User-Agent" in request.headers:
            return None  # the spider chose this request's UA
        attempt = attempts(request)
        key = self._sticky_key(request)
        previous = meta.get(UA_ROTATED)
        retried = previous is not None and previous[0] < attempt
        old = request.headers.get(b"User-Agent")
        agent: str | None
        if key is None:
            agent = self._draw(avoid=old.decode() if retried and old else None)
        else:
            agent = self._by_key.get(key)
            # A retry through the same sticky identity renews it (a retry through a new proxy
            # already has a new identity).
            renew = agent is not None and retried and previous is not None and previous[1] == key
            if agent is None or renew:
                if renew:
                    self._stats_inc("useragent/renewed")
                agent = self._by_key[key] = self._draw(avoid=agent)
        request.headers[b"User-Agent"] = agent
        meta[UA_ROTATED] = (attempt, key)
        self._stats_inc("useragent/rotated")
        return None

    def _draw(self, avoid: str | None = None) -> str:
        """A random UA; a *fresh* one (not ``avoid``) when the provider has others to give."""
        agent = self._ua_provider.get_random_ua()
        for _ in range(FRESH_DRAWS):
            if agent != avoid:
                break
            agent = self._ua_provider.get_random_ua()
        return agent

    def _sticky_key(self, request: Request) -> str | None:
        if self.sticky == "session":
            session = request.meta.get(PROXY_SESSION)
            return None if session is None else f"session:{session}"
        if self.sticky == "proxy":
            proxy = request.meta.get(ROUTED_VIA)  # masked name: no secret kept or logged
            return None if proxy is None else f"proxy:{proxy}"
        return None

    def _stats_inc(self, key: str) -> None:
        stats_of(self.crawler).inc_value(key)
