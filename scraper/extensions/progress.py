"""Progress line and end-of-crawl summary: what someone watching a long crawl wants to see. Replaces
Scrapy's ``LogStats`` (same ``LOGSTATS_INTERVAL``, same opening words, so tools that parse them keep
working) with a line that goes on: share done and ETA, in flight, retries and paced starts waiting,
429s, busiest slots, proxies. Its fields: README.md, "Watching a crawl"."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scraper.config import get_float
from scraper.crawling import stats_of
from scraper.secrets import mask_url
from scraper.spiders import ANNOUNCED_ITEMS
from scraper.timers import Repeating, every, stop

logger = logging.getLogger(__name__)

BUSIEST_SLOTS = 3  # slots named on the progress line


class ProgressLog:
    def __init__(self, crawler: Crawler, interval: float) -> None:
        self.crawler = crawler
        self.interval = interval
        self.multiplier = 60.0 / interval
        self._previous = {"pages": 0, "items": 0, "429": 0, "responses": 0}
        self._loop: Repeating | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProgressLog:
        interval = get_float(crawler.settings, "LOGSTATS_INTERVAL", 60.0, minimum=0)
        if not interval:
            raise NotConfigured
        ext = cls(crawler, interval)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self._loop = every(self.interval, self.log)

    def log(self) -> None:
        stats = self._stats()
        pages, items = stats.get("response_received_count", 0), stats.get("item_scraped_count", 0)
        # Every response the downloader got, retried ones too (response_received_count misses those).
        responses = stats.get("downloader/response_count", 0)
        limited = stats.get("downloader/response_status_count/429", 0)
        new_responses = responses - self._previous["responses"]
        share = (limited - self._previous["429"]) / new_responses if new_responses else 0.0
        rates = ((pages - self._previous["pages"]) * self.multiplier,
                 (items - self._previous["items"]) * self.multiplier)
        self._previous = {"pages": pages, "items": items, "429": limited, "responses": responses}
        parts = [eta] if (eta := self._eta(stats, items)) else []
        parts += [f"{self._in_flight()} in flight", f"{stats.get('retry/pending', 0)} retries waiting",
                 f"{stats.get('adaptive/pending', 0)} paced starts waiting", f"429s {share:.0%} of responses"]
        slots = self._busiest_slots()
        if slots:
            parts.append("slots " + ", ".join(slots))
        if "proxy/good" in stats:
            parts.append(f"proxies {stats['proxy/good']} good, {stats.get('proxy/cooling', 0)} cooling")
        logger.info("Crawled %d pages (at %d pages/min), scraped %d items (at %d items/min); %s",
                    pages, rates[0], items, rates[1], "; ".join(parts))

    def spider_closed(self, reason: str) -> None:
        stop(self._loop)
        stats = self._stats()
        collector = stats_of(self.crawler)
        start, finish = stats.get("start_time"), stats.get("finish_time")
        if start and finish and (minutes := (finish - start).total_seconds() / 60) > 0:
            collector.set_value("responses_per_minute", stats.get("response_received_count", 0) / minutes)
            collector.set_value("items_per_minute", stats.get("item_scraped_count", 0) / minutes)
        datasets = [value for key, value in stats.items() if key.startswith("parquet/dataset/")]
        datasets += [f"feed {mask_url(str(uri))}" for uri in self.crawler.settings.getdict("FEEDS")]
        logger.info("Crawl %s: %d items written, %d dropped, %d dead-lettered; %d pages, %d malformed; data: %s",
                    reason, stats.get("parquet/rows", stats.get("item_scraped_count", 0)),
                    stats.get("item_dropped_count", 0), stats.get("deadletter/count", 0),
                    stats.get("response_received_count", 0), stats.get("pages/malformed", 0),
                    ", ".join(datasets) or "no output")

    def _eta(self, stats: dict[str, Any], items: int) -> str:
        """``42% of 1000 announced items, ETA 1m05s`` when the spider knows the total (the site's
        announced count), at the crawl's average item rate so far."""
        total = stats.get(ANNOUNCED_ITEMS, 0)
        start = stats.get("start_time")
        if not total or start is None:
            return ""
        done = items + stats.get("resume/already_stored", 0)  # (a resumed crawl counts what it holds)
        elapsed = (datetime.now(tz=start.tzinfo) - start).total_seconds()
        text = f"{min(done / total, 1.0):.0%} of {total} announced items"
        if done >= total or not items or elapsed <= 0:
            return text
        return f"{text}, ETA {duration((total - done) * elapsed / items)}"

    def _stats(self) -> dict[str, Any]:
        return stats_of(self.crawler).get_stats()

    def _engine(self) -> Any:
        try:
            return self.crawler.engine
        except RuntimeError:
            return None

    def _in_flight(self) -> int:
        engine = self._engine()
        return len(engine.downloader.active) if engine is not None else 0

    def _busiest_slots(self) -> list[str]:
        engine = self._engine()
        if engine is None:
            return []
        slots = sorted(engine.downloader.slots.items(),
                       key=lambda kv: (-len(kv[1].transferring), -len(kv[1].active)))[:BUSIEST_SLOTS]
        return [f"{key} {len(slot.transferring)}/{slot.concurrency}" for key, slot in slots]


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h03m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
