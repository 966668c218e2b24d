"""``scrapy crawl books``: the whole books.toscrape.com catalogue (or any site with its layout)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from scraper.items import BookItem
from scraper.pages.books import parse_book, parse_listing

# The catalogue is one chain of listing pages, each linking the next. Taken in queue order, the chain
# advances one page per 20 products and the frontier never holds more than ~21 requests: too few to
# keep several Redis workers (or a high concurrency) busy. Listing pages go first instead.
LISTING_PRIORITY = 10


class BooksSpider(scrapy.Spider):
    """Follows the listing pager from ``start_url`` and visits every product page.

    Arguments: ``-a start_url=URL`` (default: the real site's home page); several URLs separated by
    spaces crawl several sites in one run.
    """

    name = "books"
    default_start_url = "https://books.toscrape.com/"

    def __init__(self, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url or self.default_start_url
        self.start_urls = self.start_url.split()
        hosts = [urlsplit(url).hostname for url in self.start_urls]
        if not hosts or not all(hosts):
            raise ValueError(f"start_url must be absolute http(s) URLs, got {self.start_url!r}")
        self.allowed_domains = sorted(set(hosts))

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.start_urls:
            yield scrapy.Request(url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        listing = parse_listing(response.text, response.url)
        for url in listing.product_urls:
            yield scrapy.Request(url, callback=self.parse_book)
        if listing.next_url:  # listings first: discovery runs ahead, so every worker has work
            yield scrapy.Request(listing.next_url, callback=self.parse, priority=LISTING_PRIORITY)

    def parse_book(self, response: Response) -> Iterator[BookItem]:
        yield parse_book(response.text, response.url, scraped_at=datetime.now(timezone.utc))
