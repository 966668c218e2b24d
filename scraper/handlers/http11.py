"""Scrapy's HTTP/1.1 handler with a keep-alive pool as large as a host's slot can grow.

Scrapy keeps ``CONCURRENT_REQUESTS_PER_DOMAIN`` idle connections per host; adaptive concurrency grows a slot
past that, and every response beyond the pool closed its connection (a new handshake per request). Nothing
else changes. Figures: README.md, ``DOWNLOAD_HANDLERS``.
"""

from __future__ import annotations

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.crawler import Crawler
from scrapy.settings import BaseSettings

from scraper.config import get_bool, get_int


def keep_alive_per_host(settings: BaseSettings) -> int:
    """Most requests one host can have in flight: the size its keep-alive pool needs."""
    per_domain = get_int(settings, "CONCURRENT_REQUESTS_PER_DOMAIN", 8, minimum=1)
    if not get_bool(settings, "ADAPTIVE_CONCURRENCY_ENABLED", True):
        return per_domain
    adaptive = min(get_int(settings, "ADAPTIVE_MAX_CONCURRENCY", 32, minimum=1),
                   get_int(settings, "CONCURRENT_REQUESTS", 16, minimum=1))
    return max(per_domain, adaptive)


class KeepAliveHTTP11DownloadHandler(HTTP11DownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._pool.maxPersistentPerHost = keep_alive_per_host(crawler.settings)
