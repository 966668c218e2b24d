"""``scrapy crawl quotes``: every quote of quotes.toscrape.com's JSON API (or any API with its shape)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from scraper.config import InvalidArgument
from scraper.items import QuoteItem
from scraper.meta import FETCHED_AT, RAW_ARCHIVE
from scraper.pages.quotes import parse_page, raw_name
from scraper.spiders import start_urls


class QuotesSpider(scrapy.Spider):
    """Follows ``has_next`` from ``start_url``, one API page at a time; each page's raw JSON is kept
    in the raw archive (``_raw/page-N.json`` beside the dataset) for ``python -m scraper.replay``.

    Arguments: ``-a start_url=URL`` (default: the real API's first page).
    """

    name = "quotes"
    default_start_url = "https://quotes.toscrape.com/api/quotes?page=1"
    raw_parser: ClassVar[str] = "scraper.pages.quotes.parse_page"  # what a replay re-runs

    def __init__(self, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url or self.default_start_url
        urls = start_urls(self.start_url)
        if len(urls) != 1:
            raise InvalidArgument("start_url", self.start_url, "one absolute http(s) URL")
        self.allowed_domains = [urlsplit(urls[0]).hostname or ""]

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield self.page_request(self.start_url)

    def page_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, meta={RAW_ARCHIVE: raw_name(url)})

    def parse(self, response: Response) -> Iterator[QuoteItem | scrapy.Request]:
        # The raw archive's timestamp, so a replay of this page gives identical rows.
        scraped_at = response.meta.get(FETCHED_AT) or datetime.now(UTC)
        page = parse_page(response.text, response.url, scraped_at=scraped_at)
        yield from page.items
        if page.next_url:
            yield self.page_request(page.next_url)
        page.raise_if_malformed()
