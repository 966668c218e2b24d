"""The running crawl's spider and stats, for components: Scrapy types ``Crawler.spider`` and
``Crawler.stats`` as optional because they are set as the crawl starts; every component here runs
inside a started crawl."""

from __future__ import annotations

from scrapy import Spider
from scrapy.crawler import Crawler
from scrapy.statscollectors import StatsCollector


def spider_of(crawler: Crawler) -> Spider:
    spider = crawler.spider
    if spider is None:
        raise RuntimeError("no crawl is running: the crawler has no spider yet")
    return spider


def stats_of(crawler: Crawler) -> StatsCollector:
    stats = crawler.stats
    if stats is None:
        raise RuntimeError("no crawl is running: the crawler has no stats collector yet")
    return stats
