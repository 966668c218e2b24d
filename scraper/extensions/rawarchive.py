"""Raw archive: keeps the bodies of chosen responses beside the dataset, so parsing and normalisation
can be re-run later without the network (``python -m scraper.replay``).

A request opts in with ``meta["raw_archive"] = "<file name>"``. Behaviour: docs/dead-letters.md
(Raw archive and replay); settings and stats: README.md.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response

from scraper.config import get_bool
from scraper.crawling import stats_of
from scraper.meta import FETCHED_AT, RAW_ARCHIVE
from scraper.output import side_location
from scraper.parquet.dataset import resolve_uri
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)

INDEX_PREFIX = "index-"
# A plain file name: no directories, not hidden, not one of the archive's own index files.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class RawArchiveExtension:
    def __init__(self, crawler: Crawler, uri_template: str) -> None:
        self.crawler = crawler
        self.uri_template = uri_template
        self.token = uuid.uuid4().hex[:12]  # several writers can share one directory
        self.directory: str | None = None
        self._location: str | None = None  # filled on the reactor thread, at the first archived response
        self.files = 0
        self.bytes = 0
        self._fs: pafs.FileSystem | None = None
        self._index: pa.NativeFile | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="rawarchive")  # one thread: index in order
        self._failed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RawArchiveExtension:
        if not get_bool(crawler.settings, "RAW_ARCHIVE_ENABLED", True):
            raise NotConfigured("RAW_ARCHIVE_ENABLED is False")
        ext = cls(crawler, (crawler.settings.get("RAW_ARCHIVE_URI") or "").strip())
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.close, signal=signals.spider_closed)
        return ext

    def location(self) -> str:
        return side_location(self.crawler, self.uri_template, "_raw")

    def response_received(self, response: Response, request: Request) -> None:
        name = request.meta.get(RAW_ARCHIVE)
        if not name or not 200 <= response.status < 300:
            return
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith(INDEX_PREFIX):
            logger.error("Raw archive: refused file name %r for %s (a plain name, not index-*)", name,
                         response.url)
            return
        if self._location is None:
            try:
                self._location = self.location()
            except (KeyError, ValueError, TypeError) as exc:  # an unknown placeholder, say
                if not self._failed:
                    self._failed = True
                    setting = "RAW_ARCHIVE_URI" if self.uri_template else "PARQUET_URI"
                    logger.error("Raw archive off: %s has a placeholder it cannot fill: %r", setting, exc)
                return
        fetched_at = datetime.now(UTC)
        request.meta[FETCHED_AT] = fetched_at
        body = response.body
        record = {"file": name, "url": response.url, "status": response.status,
                  "encoding": getattr(response, "encoding", None), "bytes": len(body),
                  "fetched_at": fetched_at.isoformat()}
        self._io.submit(self._write, name, body, record).add_done_callback(self._check)

    def close(self) -> None:
        self._io.shutdown(wait=True)  # every accepted body is on disk before the crawl ends
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._location is None:
            return  # no request asked for archiving (books): no stats, no directory
        stats = stats_of(self.crawler)
        stats.set_value("raw_archive/files", self.files)  # counted once written, not when accepted
        stats.set_value("raw_archive/bytes", self.bytes)
        if self.files:
            logger.info("Raw archive: %s file(s) in %s", self.files, mask_url(self.directory or ""))

    def _write(self, name: str, body: bytes, record: dict[str, Any]) -> None:
        """On the archive thread: the file first, then its index line (flushed)."""
        if self._index is None:
            self._open()
        assert self._fs is not None and self._index is not None
        with self._fs.open_output_stream(f"{self.directory}/{name}") as out:
            out.write(body)
        self._index.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
        self._index.flush()
        self.files += 1
        self.bytes += len(body)

    def _open(self) -> None:
        assert self._location is not None
        fs, directory = resolve_uri(self._location, self.crawler.settings)
        fs.create_dir(directory, recursive=True)
        self._fs, self.directory = fs, directory.rstrip("/")
        self._index = fs.open_output_stream(f"{self.directory}/{INDEX_PREFIX}{self.token}.jsonl")
        logger.info("Raw archive: responses go to %s", mask_url(self.directory))

    def _check(self, future: Future[None]) -> None:
        exc = future.exception()
        if exc is not None and not self._failed:
            self._failed = True  # one line, not one per response: the cause is the same
            where = self.directory or self.uri_template or "_raw/ beside the dataset"
            logger.error("Raw archive: cannot write to %s: %s", mask_url(where), exc)
