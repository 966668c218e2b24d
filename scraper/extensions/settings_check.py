"""Scrapy's own settings that a crawl depends on, checked at start-up. Scrapy reads some of them where
a bad value's error is swallowed (``CONCURRENT_REQUESTS=0`` ends up as "Unsupported URL scheme 'http'"
from the download handler loader, and the crawl "finishes" having fetched nothing), so they are checked
here, before anything is built; a bad one fails the start naming the setting, and so does a setting
of a plugin this project replaces (``ROTATING_PROXY_LIST``, ``REDIS_HOST``...). It also masks secret
settings (``AWS_SECRET_ACCESS_KEY``...) in Scrapy's "Overridden settings" log line."""

from __future__ import annotations

import logging

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.settings import default_settings

from scraper.config import InvalidSetting, get_float, get_int
from scraper.secrets import SecretSettingsFilter

AT_LEAST_ONE = ("CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "CONCURRENT_ITEMS")
NOT_NEGATIVE = ("RETRY_TIMES", "REDIRECT_MAX_TIMES", "DOWNLOAD_MAXSIZE",
                "DOWNLOAD_WARNSIZE")
SECONDS = ("DOWNLOAD_DELAY",)  # >= 0
POSITIVE_SECONDS = ("DOWNLOAD_TIMEOUT",)
TIMEOUT_MIN = 0.001
# Settings of the plugins this project replaces: silently ignored, they would crawl direct or alone
REPLACED = {
    "ROTATING_PROXY_LIST": ("scrapy-rotating-proxies", "PROXY_LIST"),
    "ROTATING_PROXY_LIST_PATH": ("scrapy-rotating-proxies", "PROXY_LIST_FILE"),
    "ROTATING_PROXY_PAGE_RETRY_TIMES": ("scrapy-rotating-proxies", "PROXY_BAN_RETRY_TIMES"),
    "REDIS_HOST": ("scrapy-redis", "REDIS_URL (redis://[:password@]host:port/db)"),
    "REDIS_PORT": ("scrapy-redis", "REDIS_URL (redis://[:password@]host:port/db)"),
    "REDIS_PARAMS": ("scrapy-redis", "REDIS_URL (password, database and TLS go in the URL)"),
}


class SettingsCheck:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SettingsCheck:
        settings = crawler.settings
        for name in AT_LEAST_ONE:
            get_int(settings, name, getattr(default_settings, name), minimum=1)
        for name in NOT_NEGATIVE:
            get_int(settings, name, getattr(default_settings, name), minimum=0)
        for name in SECONDS:
            get_float(settings, name, getattr(default_settings, name), minimum=0)
        for name in POSITIVE_SECONDS:
            get_float(settings, name, getattr(default_settings, name), minimum=TIMEOUT_MIN)
        for name, (plugin, ours) in REPLACED.items():
            if settings.get(name) not in (None, "", [], {}):
                raise InvalidSetting(name, "…", f"it unset (a {plugin} setting; this project replaces "
                                                 f"{plugin}: use {ours})")
        # Scrapy logs every setting a project changed, secrets included, right after the extensions
        logging.getLogger("scrapy.crawler").addFilter(SecretSettingsFilter(settings))
        raise NotConfigured  # checked: nothing to do while crawling
