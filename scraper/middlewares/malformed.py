"""Spider middleware: a page a page object cannot parse is counted and logged, not fatal.

Callbacks let :class:`~scraper.pages.errors.PageParseError` propagate; this middleware turns it into
one WARNING line naming the URL and the field, increments ``pages/malformed`` and
``pages/malformed/<field>``, dead-letters the page (kind ``page``), and lets the crawl go on. Other
exceptions pass through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from scrapy.crawler import Crawler
from scrapy.http import Response

from scraper import signals as our_signals
from scraper.crawling import stats_of
from scraper.pages.errors import PageParseError

logger = logging.getLogger(__name__)


class MalformedPageMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MalformedPageMiddleware:
        return cls(crawler)

    def process_spider_exception(self, response: Response, exception: Exception) -> Iterable[Any] | None:
        if not isinstance(exception, PageParseError):
            return None
        stats = stats_of(self.crawler)
        stats.inc_value("pages/malformed")
        stats.inc_value(f"pages/malformed/{exception.field}")
        logger.warning("Dropped malformed page %s: field %r: %s", response.url, exception.field,
                       exception.reason)
        self.crawler.signals.send_catch_log(our_signals.dead_letter, record={
            "kind": "page", "reason": "malformed", **our_signals.request_fields(response.request),
            "url": response.url, "field": exception.field,
            "error": exception.reason, "status": response.status,
        })
        return ()
