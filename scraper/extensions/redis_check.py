"""Fail fast when distributed mode is on and Redis cannot be reached.

The scheduler is only built when the engine opens the spider, where a failure also trips Scrapy's
own clean-up; this extension checks at crawler start-up instead, so an unreachable Redis gives one
clear error naming the URL (password masked) and a non-zero exit.
"""

from __future__ import annotations

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scraper.distributed.connection import connect, redis_url


class RedisCheck:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisCheck:
        url = redis_url(crawler.settings)
        if not url:
            raise NotConfigured  # distributed mode is off: nothing to check (and nothing to warn about)
        connect(url, crawler.settings).close()  # raises RedisUnavailable
        return cls()
