"""``scrapy redis_reset SPIDER``: delete a distributed crawl's state in Redis (frontier, dupefilter,
leases, journal), so the next run starts over. A run refuses to start over a dead run's leftovers
and names this command; it refuses itself while a worker of the crawl is alive, unless ``--force``."""

from __future__ import annotations

import argparse
import logging
import time

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from scraper.config import CannotStart, InvalidSetting
from scraper.distributed import redis_url
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "[options] <spider>"

    def short_desc(self) -> str:
        return "Delete a distributed crawl's Redis state so the next run starts over"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--force", action="store_true", help="even while a worker of the crawl is alive")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError
        assert self.crawler_process is not None
        settings = self.crawler_process.settings
        url = redis_url(settings)
        if not url:
            raise UsageError("distributed mode is off: set REDIS_URL (or SCRAPER_REDIS_URL)")
        # (imported only now: Scrapy imports every command module at each start, to list them)
        from scraper.distributed.connection import connect
        from scraper.distributed.scheduler import alive_window
        from scraper.distributed.state import DEFAULT_PREFIX, Keys, namespace, reset
        try:
            spidercls = self.crawler_process.spider_loader.load(args[0])
        except KeyError:
            raise UsageError(f"Spider not found: {args[0]}") from None
        try:
            keys = Keys(namespace(settings.get("REDIS_KEY_PREFIX", DEFAULT_PREFIX), args[0], vars(spidercls)))
            server = connect(url, settings)
        except (InvalidSetting, CannotStart) as exc:
            logger.error("%s", exc)
            self.exitcode = 1
            return
        try:
            live = server.zcount(keys.workers, time.time() - alive_window(settings), "+inf")
            if live and not opts.force:
                logger.error("%d worker(s) of the crawl under %s are alive: stop them first, or use --force",
                             live, keys.namespace)
                self.exitcode = 1
                return
            logger.info("Deleted %d key(s) under %s at %s", reset(server, keys), keys.namespace, mask_url(url))
        finally:
            server.close()
