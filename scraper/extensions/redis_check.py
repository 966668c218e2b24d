"""Fail fast when distributed mode is on and Redis cannot be reached, or holds a dead run's leftovers.

The scheduler is only built when the engine opens the spider, where a failure also trips Scrapy's
own clean-up; this extension checks at crawler start-up instead, so each problem is one clear error
naming the URL (password masked) and what to do, and a non-zero exit.
"""

from __future__ import annotations

import logging
import time

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scraper.config import get_bool
from scraper.crawling import spider_of
from scraper.distributed import redis_url
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)


class RedisCheck:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisCheck:
        settings = crawler.settings
        url = redis_url(settings)
        if not url:
            raise NotConfigured  # distributed mode is off: nothing to check (and nothing to warn about)
        # (imported only now: a crawl without Redis imports no Redis client)
        from scraper.distributed.connection import connect
        from scraper.distributed.scheduler import alive_window
        from scraper.distributed.state import (
            DEFAULT_PREFIX,
            Keys,
            RedisLeftovers,
            leftovers_message,
            namespace,
            read_state,
            reset,
        )
        spider = spider_of(crawler)
        keys = Keys(namespace(settings.get("REDIS_KEY_PREFIX", DEFAULT_PREFIX), spider.name, vars(spider)))
        server = connect(url, settings)  # raises RedisUnavailable
        try:
            state = read_state(server, keys, time.time() - alive_window(settings))
            persist = get_bool(settings, "SCHEDULER_PERSIST", False)
            if state.leftovers and get_bool(settings, "SCHEDULER_FLUSH_ON_START", False):
                logger.warning("SCHEDULER_FLUSH_ON_START: cleared %d key(s) an earlier run left under %s",
                               reset(server, keys), keys.namespace)
            elif state.leftovers and state.finished and not persist:
                logger.info("Cleared %d key(s) of the finished crawl under %s (its last worker died before "
                            "clearing them)", reset(server, keys), keys.namespace)
            elif state.leftovers and not persist:
                raise RedisLeftovers(leftovers_message(state, keys, spider.name, mask_url(url)))
            elif state.leftovers:
                logger.info("SCHEDULER_PERSIST: %d request(s) seen by earlier runs under %s are skipped",
                            state.seen, keys.namespace)
            elif state.abandoned:
                logger.warning("Resuming the crawl an earlier run left under %s: %d request(s) queued or "
                               "leased, no live worker", keys.namespace, state.queued)
        finally:
            server.close()
        return cls()
