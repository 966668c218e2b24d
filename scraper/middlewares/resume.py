"""Spider middleware: resume a ``JOBDIR`` crawl whose last run was killed, losing nothing and storing
nothing twice. Scrapy marks a request seen when it is scheduled and saves its queue only at a clean
close, so after a ``kill -9`` the job directory forgets what was in flight (and often the whole queue).
Here such a run starts over from its start URLs with a fresh queue and seen-set, into the same dataset,
and drops requests for URLs whose rows the dataset already holds: what was in flight is re-crawled,
what was stored is not fetched again. A clean stop (SIGINT, SIGTERM) resumes as Scrapy does."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scraper.middlewares.stored import SkipStoredUrls
from scraper.output import crawl_time, format_uri, killed_before, mark_closed, parquet_template
from scraper.parquet.dataset import resolve_uri, stored_urls
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)

SCRAPY_JOB_FILES = ("requests.seen", "requests.queue")  # what Scrapy's JOBDIR scheduler keeps


class ResumeMiddleware(SkipStoredUrls):
    stored_stat = "resume/already_stored"

    def __init__(self, crawler: Crawler, stored: set[str]) -> None:
        self.crawler = crawler
        self.stored = stored

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ResumeMiddleware:
        settings = crawler.settings
        jobdir = settings.get("JOBDIR")
        if not jobdir:
            raise NotConfigured
        stored: set[str] = set()
        if killed_before(settings):
            stored = cls._recover(crawler, Path(jobdir))
        mw = cls(crawler, stored)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    @staticmethod
    def _recover(crawler: Crawler, jobdir: Path) -> set[str]:
        """Forget Scrapy's queue and seen-set, clear the dead run's hidden parts; the stored URLs."""
        for name in SCRAPY_JOB_FILES:
            path = jobdir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        template = parquet_template(crawler)
        if not template or "%(item)s" in template:
            logger.warning("JOBDIR %s: the last run was killed; re-crawling from the start (with %s, "
                           "rows it stored may be stored again)", jobdir,
                           "no Parquet output" if not template else "%(item)s in PARQUET_URI")
            return set()
        location = format_uri(template, crawler.spider, crawl_time(crawler), "")
        fs, directory = resolve_uri(location, crawler.settings)
        try:
            stale = [info.path for info in fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
                     if info.path.rpartition("/")[2].startswith(".part-")]
            for path in stale:  # parts the killed run never finished: never readable, never published
                fs.delete_file(path)
        except (OSError, pa.ArrowException):
            stale = []
        stored = stored_urls(fs, directory)
        logger.warning("JOBDIR %s: the last run was killed, so its queue does not say what was in flight. "
                       "Re-crawling from the start into the same dataset (%s), skipping the %d URL(s) it "
                       "already holds; %d unfinished hidden part(s) removed", jobdir, mask_url(location),
                       len(stored), len(stale))
        return stored

    def spider_closed(self, reason: str) -> None:
        mark_closed(self.crawler.settings, reason)
