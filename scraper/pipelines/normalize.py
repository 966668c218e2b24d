"""Item pipeline: CPU-heavy normalisation in worker processes, batched, never blocking the reactor.

Opt-in per item class (``normalizer``); an item whose normaliser fails is dead-lettered, never written
half-normalised. Behaviour: docs/normalisation.md; settings and stats: README.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from itemadapter import ItemAdapter
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured

from scraper import signals as our_signals
from scraper.config import get_bool, get_choice, get_float, get_int
from scraper.crawling import stats_of
from scraper.normalize.pool import MP_CONTEXTS, BatchNormalizer
from scraper.pipelines import close_crawl

logger = logging.getLogger(__name__)


class NormalizePipeline:
    def __init__(self, crawler: Crawler, normalizer: BatchNormalizer) -> None:
        self.crawler = crawler
        self.normalizer = normalizer
        self._closing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> NormalizePipeline:
        settings = crawler.settings
        if not get_bool(settings, "NORMALIZE_ENABLED", True):
            raise NotConfigured("NORMALIZE_ENABLED is False")
        workers = get_int(settings, "NORMALIZE_WORKERS", os.cpu_count() or 1, minimum=0, maximum=256)
        normalizer = BatchNormalizer(
            workers=workers,
            batch_size=get_int(settings, "NORMALIZE_BATCH_SIZE", 50, minimum=1),
            max_wait=get_float(settings, "NORMALIZE_BATCH_MAX_WAIT", 0.05, minimum=0, maximum=60),
            max_pending=get_int(settings, "NORMALIZE_MAX_PENDING_BATCHES", 2 * max(workers, 1), minimum=1),
            mp_context=get_choice(settings, "NORMALIZE_MP_CONTEXT", "forkserver", MP_CONTEXTS),
        )
        return cls(crawler, normalizer)

    def open_spider(self) -> None:
        self.normalizer.start()
        mode = f"{self.normalizer.workers} {self.normalizer.mp_context} worker(s)" \
            if self.normalizer.workers else "inline"
        logger.info("Normalisation: %s, batches of %s", mode, self.normalizer.batch_size)

    async def process_item(self, item: Any) -> Any:
        function = getattr(type(item), "normalizer", None)
        if not function:
            return item
        adapter = ItemAdapter(item)
        record = dict(adapter.items())  # shallow: asdict() deep-copies every item on the reactor thread
        outcome = await self.normalizer.submit(function, record)
        if not outcome.ok:
            if self.normalizer.unusable is not None and not self._closing:
                self._closing = True  # workers that cannot start: stop, rather than dead-letter the site
                close_crawl(self.crawler, "normalize_pool_failed")
            self.crawler.signals.send_catch_log(our_signals.dead_letter, record={
                "kind": "item", "reason": "normalize_error", "url": record.get("url"),
                "error": outcome.error, "traceback": outcome.traceback, "item": record,
            })
            raise DropItem(f"normalisation failed, dead-lettered: {outcome.error}")
        for name, value in (outcome.value or {}).items():
            adapter[name] = value
        return item

    async def close_spider(self) -> None:
        await self.normalizer.close()  # drains first: every accepted item gets an outcome
        stats, pool = stats_of(self.crawler), self.normalizer.stats
        stats.set_value("normalize/items", pool.items)
        stats.set_value("normalize/batches", pool.batches)
        stats.set_value("normalize/errors", pool.errors)
        stats.set_value("normalize/pool_restarts", pool.restarts)
        if pool.items and self.normalizer.workers:
            stats.set_value("normalize/queue_wait/avg_ms", round(1000 * pool.queue_wait_total / pool.items, 3))
            stats.set_value("normalize/queue_wait/max_ms", round(1000 * pool.queue_wait_max, 3))
