"""The crawl's outcome at close (see :mod:`scraper.outcome`): stats ``outcome/exit_code`` and
``outcome/cause``, for the ``crawl`` command's exit status and for anyone reading the stats dump, and
an ERROR line saying why a crawl failed. Also counts items a pipeline failed on (``item_error``)."""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.crawler import Crawler

from scraper.crawling import stats_of
from scraper.outcome import Thresholds, judge

logger = logging.getLogger(__name__)


class CrawlOutcome:
    def __init__(self, crawler: Crawler, thresholds: Thresholds) -> None:
        self.crawler = crawler
        self.thresholds = thresholds

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlOutcome:
        ext = cls(crawler, Thresholds.from_settings(crawler.settings))
        crawler.signals.connect(ext.item_error, signal=signals.item_error)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def item_error(self) -> None:
        stats_of(self.crawler).inc_value("outcome/item_errors")

    def spider_closed(self, reason: str) -> None:
        stats = stats_of(self.crawler)
        if "start_time" not in stats.get_stats():
            return  # the spider never opened: the crawl command reports it could not start
        outcome = judge(stats.get_stats(), reason, self.thresholds)
        stats.set_value("outcome/exit_code", outcome.code)
        if outcome.cause:
            stats.set_value("outcome/cause", outcome.cause)
            logger.error("Crawl failed (exit status %d): %s", outcome.code, outcome.cause)
        elif not outcome.complete:
            logger.warning("Crawl succeeded, but the dataset is not marked complete: %d request(s) "
                           "dead-lettered (within CRAWL_MAX_DEADLETTER_SHARE)", outcome.dead_letters)
