"""Scrapy's robots.txt middleware, but a start URL that robots.txt forbids is a WARNING naming it:
Scrapy says so at DEBUG, and the crawl then ends with nothing and no visible reason."""

from __future__ import annotations

import logging

from scrapy.downloadermiddlewares import robotstxt
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.robotstxt import RobotParser

logger = logging.getLogger(__name__)


class RobotsTxtMiddleware(robotstxt.RobotsTxtMiddleware):
    def process_request_2(self, rp: RobotParser | None, request: Request) -> None:
        try:
            super().process_request_2(rp, request)
        except IgnoreRequest:
            if request.meta.get("is_start_request"):
                logger.warning("robots.txt forbids the start URL %s (ROBOTSTXT_OBEY is True): nothing is "
                               "crawled from it", request.url)
            raise
