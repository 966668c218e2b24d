"""Spider middleware: re-crawl a dataset's dead letters into the same dataset (``REDRIVE_FROM``,
which ``scrapy redrive DATASET`` sets).

The crawl's start becomes the dataset's dead-lettered requests, each with its callback. Requests for
URLs whose rows the dataset already holds are dropped (a re-driven listing page links to products
stored long ago), so nothing is stored twice. When the crawl finishes, the dead-letter files it read
move to ``_deadletter/redriven/``; what fails again is dead-lettered anew, for the next re-drive.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scraper.config import InvalidSetting
from scraper.crawling import stats_of
from scraper.middlewares.stored import SkipStoredUrls
from scraper.parquet.dataset import resolve_uri, stored_urls
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)

LETTERS = "_deadletter"
REDRIVEN = "redriven"


class RedriveMiddleware(SkipStoredUrls):
    stored_stat = "redrive/already_stored"

    def __init__(self, crawler: Crawler, dataset: str) -> None:
        self.crawler = crawler
        self.fs, self.directory = resolve_uri(dataset, crawler.settings)
        letters = f"{self.directory}/{LETTERS}"
        try:
            self.files = sorted(info.path for info in self.fs.get_file_info(pafs.FileSelector(letters))
                                if info.path.endswith(".jsonl"))
        except (OSError, pa.ArrowException):
            self.files = []
        if not self.files:
            raise InvalidSetting("REDRIVE_FROM", mask_url(dataset), f"a dataset with dead letters ({LETTERS}/*.jsonl)")
        self.records = [json.loads(line) for path in self.files for line in self._lines(path)]
        self.stored = stored_urls(self.fs, self.directory)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedriveMiddleware:
        dataset = (crawler.settings.get("REDRIVE_FROM") or "").strip()
        if not dataset:
            raise NotConfigured
        mw = cls(crawler, dataset)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The dead letters instead of the spider's own start (which is never iterated)."""
        spider = self.crawler.spider
        seen = set()
        for record in self.records:
            url, callback = record.get("url"), getattr(spider, record.get("callback") or "", None)
            if not url or url in seen or url in self.stored:
                continue
            seen.add(url)
            if callback is None:
                self._stat("redrive/skipped")
                logger.warning("Cannot re-drive %s: its dead letter names no callback of the spider", url)
                continue
            self._stat("redrive/requests")
            yield Request(url, method=record.get("method") or "GET", callback=callback)

    def spider_closed(self, reason: str) -> None:
        """The letters read were re-driven: move them aside (failures were dead-lettered anew). A
        re-drive stopped half-way keeps them: the next one skips what got stored meanwhile."""
        if reason != "finished":
            logger.warning("Re-drive closed (%s): its %s dead letter(s) stay for the next one", reason,
                           len(self.records))
            return
        moved = f"{self.directory}/{LETTERS}/{REDRIVEN}"
        self.fs.create_dir(moved, recursive=True)
        for path in self.files:
            self.fs.move(path, f"{moved}/{path.rsplit('/', 1)[-1]}")
        logger.info("Re-drove %s dead letter(s); their files moved to %s", len(self.records), mask_url(moved))

    def _lines(self, path: str) -> list[str]:
        with self.fs.open_input_stream(path) as stream:
            return [line for line in stream.read().decode().splitlines() if line.strip()]

    def _stat(self, key: str) -> None:
        stats_of(self.crawler).inc_value(key)
