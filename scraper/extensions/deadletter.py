"""Dead-letter sink: records of accepted work that could not be completed, as JSON lines.

So that nothing accepted is silently lost: a killed crawl keeps every record it wrote, and one that cannot
be written is counted (``deadletter/lost``, exit status 4). Behaviour: docs/dead-letters.md; settings and
stats: README.md.
"""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scraper import signals as our_signals
from scraper.config import get_bool
from scraper.crawling import spider_of, stats_of
from scraper.output import side_location
from scraper.parquet.dataset import resolve_uri
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)


class DeadLetterExtension:
    def __init__(self, crawler: Crawler, uri_template: str) -> None:
        self.crawler = crawler
        self.uri_template = uri_template
        self.path: str | None = None
        self.count = 0
        self._stream: pa.NativeFile | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="deadletter")  # in order, off the reactor
        self._lost = 0  # records the I/O thread could not write (its own: stats are the reactor's)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DeadLetterExtension:
        if not get_bool(crawler.settings, "DEADLETTER_ENABLED", True):
            raise NotConfigured("DEADLETTER_ENABLED is False")
        ext = cls(crawler, (crawler.settings.get("DEADLETTER_URI") or "").strip())
        crawler.signals.connect(ext.record, signal=our_signals.dead_letter)
        crawler.signals.connect(ext.close, signal=signals.spider_closed)
        return ext

    def location(self) -> str:
        return side_location(self.crawler, self.uri_template, "_deadletter")

    def record(self, record: dict[str, Any]) -> None:
        line = {"time": datetime.now(UTC).isoformat(), "spider": spider_of(self.crawler).name,
                **record}
        data = (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode()
        self.count += 1
        stats = stats_of(self.crawler)
        stats.inc_value("deadletter/count")
        stats.inc_value(f"deadletter/kind/{record.get('kind', 'unknown')}")
        self._io.submit(self._write, data)

    def close(self) -> None:
        self._io.submit(self._close)
        self._io.shutdown(wait=True)  # (at close: every record is on disk before the crawl ends)
        if self._lost:
            stats_of(self.crawler).set_value("deadletter/lost", self._lost)

    def _write(self, data: bytes) -> None:
        """On the I/O thread. A record that cannot be written is lost work: an ERROR, and (at close)
        the crawl's exit status."""
        try:
            if self._stream is None:
                self._open()
            assert self._stream is not None
            self._stream.write(data)
            self._stream.flush()
        except (OSError, pa.ArrowException) as exc:
            self._lost += 1
            logger.error("Could not write a dead letter to %s: %s", mask_url(self.location()), exc)

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
            logger.warning("Dead letters: %s record(s) in %s", self.count, self.path)

    def _open(self) -> None:
        location = self.location()
        fs, directory = resolve_uri(location, self.crawler.settings)
        fs.create_dir(directory, recursive=True)
        self.path = f"{directory.rstrip('/')}/deadletter-{uuid.uuid4().hex[:12]}.jsonl"
        self._stream = fs.open_output_stream(self.path)
        logger.info("Dead letters go to %s", mask_url(self.path))
