"""``scrapy parse URL --spider NAME``: the URL given is fetched even when it is not on the spider's
default site. Without ``-a start_url`` a spider's ``allowed_domains`` names the real site, so Scrapy's
parse dropped a local copy's URL as offsite ("No response downloaded"). Links followed with ``--depth``
stay on-site as in a crawl."""

from __future__ import annotations

import argparse

from scrapy import Request, Spider
from scrapy.commands import parse


class Command(parse.Command):
    # one page, not a crawl: the whole-crawl thresholds of the exit status (scraper/outcome.py) and the
    # close-time monitors (scraper/monitors.py) do not apply
    default_settings = {**parse.Command.default_settings, "CRAWL_MIN_ITEMS": 0, "CRAWL_MAX_DEADLETTER_SHARE": 1.0,
                        "SPIDERMON_ENABLED": False}

    def set_spidercls(self, url: str, opts: argparse.Namespace) -> None:
        self._given = url
        super().set_spidercls(url, opts)

    def prepare_request(self, spider: Spider, request: Request, opts: argparse.Namespace) -> Request:
        request = super().prepare_request(spider, request, opts)
        if request.url == self._given:
            request.meta["allow_offsite"] = True
        return request
