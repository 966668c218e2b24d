"""Scrapy's stats collector that also writes a crawl's final stats as JSON (``STATS_FILE``): for the
scripts, schedulers and tests that act on a crawl's figures, which should not parse the log's
pretty-printed dump. Written once, at close, after every extension has had its say (exit status too)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from scrapy.crawler import Crawler
from scrapy.statscollectors import MemoryStatsCollector, StatsT

from scraper.config import InvalidSetting

logger = logging.getLogger(__name__)


class JsonFileStatsCollector(MemoryStatsCollector):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        path = crawler.settings.get("STATS_FILE") or ""
        if path:  # checked now: at close it would be too late
            parent = Path(path).parent
            if not parent.is_dir() or not os.access(parent, os.W_OK):
                raise InvalidSetting("STATS_FILE", path, "a file path in an existing, writable directory")
            Path(path).unlink(missing_ok=True)  # an earlier run's stats must not pass for this one's
        self.path = path

    def _persist_stats(self, stats: StatsT) -> None:
        super()._persist_stats(stats)
        if not self.path:
            return
        target = Path(self.path)
        temporary = None
        try:  # written beside, then renamed: a reader never sees half a file
            with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.",
                                             delete=False) as handle:
                temporary = handle.name
                json.dump(stats, handle, default=str, indent=1, sort_keys=True)
            os.replace(temporary, target)
        except OSError as exc:
            logger.error("Could not write the stats to STATS_FILE=%s: %s", self.path, exc)
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
