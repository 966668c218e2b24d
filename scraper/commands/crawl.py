"""``scrapy crawl`` with an exit status that says how the crawl ended (the table in the README, from
:mod:`scraper.outcome`), a last log line that says it too, and start-up errors caused by a bad
setting or argument shown as one line naming it instead of an asyncio traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging

from scrapy import signals
from scrapy.commands import crawl

from scraper import outcome
from scraper.config import CannotStart, InvalidArgument, InvalidSetting
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)


class Command(crawl.Command):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            super().run(args, opts)  # Scrapy's usage errors
            return
        assert self.crawler_process is not None
        crawler = self._create_crawler(args[0])
        arguments = dict(opts.spargs)

        def record_arguments() -> None:  # in the stats, so the manifest has them (`scrapy redrive`)
            crawler.stats.set_value("spider/arguments", {k: mask_url(str(v)) for k, v in arguments.items()})

        crawler.signals.connect(record_arguments, signal=signals.spider_opened, weak=False)
        started = self.crawler_process.crawl(crawler, **opts.spargs)
        if isinstance(started, asyncio.Future):
            started.add_done_callback(_report_start_failure)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed or not getattr(crawler, "spider", None):
            self.exitcode = outcome.NOT_STARTED
            logger.error("Exit status %d: the crawl could not start (see the ERROR above)", self.exitcode)
            return
        stats = crawler.stats.get_stats()
        if "outcome/exit_code" in stats:
            self.exitcode = stats["outcome/exit_code"]
            if self.exitcode:
                logger.error("Exit status %d: %s", self.exitcode, stats.get("outcome/cause", ""))
            else:
                logger.info("Exit status 0: the crawl finished and lost nothing")


def _report_start_failure(task: asyncio.Future[None]) -> None:
    """Retrieve the crawl task's exception (so asyncio does not print it as never retrieved) and log
    it: one line for bad input, the traceback for anything else (a bug)."""
    if task.cancelled() or (exc := task.exception()) is None:
        return
    if isinstance(exc, (InvalidSetting, InvalidArgument, CannotStart)):
        logger.error("%s", exc)
    else:
        logger.error("The crawl could not start: %s", exc, exc_info=exc)
