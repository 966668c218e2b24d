"""A scrapy-fake-useragent provider over fake-useragent's offline data, filtered once at start-up:
fake-useragent 2.x's own ``UserAgent.random`` re-filters ~7,000 records per call and, when nothing
matches, quietly returns its one fallback UA. This one fails at start-up naming the setting, and picks
by the records' real-world share. Settings (``USERAGENT_*``): README.md."""

from __future__ import annotations

import itertools
import random

from fake_useragent import UserAgent
from scrapy.settings import BaseSettings

from scraper.config import InvalidSetting, get_float, split_list

DEFAULT_BROWSERS = ("Chrome", "Firefox", "Edge", "Safari")
DEFAULT_PLATFORMS = ("desktop",)
DEFAULT_OS = ("Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS")


class BrowserUserAgentProvider:
    """A provider as scrapy-fake-useragent's ``BaseProvider`` defines them (built with the settings,
    ``get_random_ua()``), without subclassing it: its module imports Faker for its own FakerProvider,
    77 ms at every start of a crawl that does not use it."""

    def __init__(self, settings: BaseSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        browsers = split_list(settings.get("USERAGENT_BROWSERS"), on_spaces=False) or list(DEFAULT_BROWSERS)
        platforms = split_list(settings.get("USERAGENT_PLATFORMS"), on_spaces=False) or list(DEFAULT_PLATFORMS)
        systems = split_list(settings.get("USERAGENT_OS"), on_spaces=False) or list(DEFAULT_OS)
        min_version = get_float(settings, "USERAGENT_MIN_VERSION", 0.0, minimum=0)
        fallback = settings.get("FAKEUSERAGENT_FALLBACK")
        if not isinstance(fallback, str) or not fallback:
            raise InvalidSetting("FAKEUSERAGENT_FALLBACK", fallback, "a User-Agent string")
        data = UserAgent(browsers=browsers, os=systems, platforms=platforms, min_version=min_version,
                         fallback=fallback)
        records = data._filter_useragents()
        if not records:
            raise InvalidSetting("USERAGENT_BROWSERS", browsers,
                                 f"browsers that fake-useragent has for platforms {platforms} and "
                                 f"OS {systems} at version >= {min_version}")
        self._agents = [record["useragent"] for record in records]
        # Cumulative once here: random.choices would re-add ~2,000 weights on every request.
        self._cum_weights = list(itertools.accumulate(max(record["percent"], 0.001) for record in records))
        self._rng = rng or random.Random()
        self._ua_type = "browser"

    def __len__(self) -> int:
        return len(self._agents)

    def get_random_ua(self) -> str:
        return self._rng.choices(self._agents, cum_weights=self._cum_weights)[0]
