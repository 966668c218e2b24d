"""The running crawl's spider, for components: Scrapy types ``Crawler.spider`` as optional because it is
set only once the crawl starts; every component here runs inside a started crawl."""

from __future__ import annotations

from scrapy import Spider
from scrapy.crawler import Crawler


def spider_of(crawler: Crawler) -> Spider:
    spider = crawler.spider
    if spider is None:
        raise RuntimeError("no crawl is running: the crawler has no spider yet")
    return spider
