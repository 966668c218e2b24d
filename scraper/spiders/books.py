"""``scrapy crawl books``: the whole books.toscrape.com catalogue (or any site with its layout)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from scraper.items import BookItem
from scraper.pages.books import parse_book, parse_listing
from scraper.spiders import ANNOUNCED_ITEMS, start_urls

# The catalogue is one chain of listing pages, each linking the next: followed link by link, discovery
# advances one page per round trip and starves a fast crawl (or a second Redis worker) of work. So the
# first listing page a crawl is given schedules every later page at once, from the pager's "Page 1 of
# 50". Discovery then runs one block of LEAD_PAGES listing pages ahead of the products: the pages of
# block b+1 go after the products of block b-1 and before those of block b (``listing_priority``,
# ``product_priority``). A listing page that has to wait (a Retry-After, a backoff) is waited out while
# the crawl has a block of products to fetch, instead of holding up the end of the crawl with all its
# products behind it; and the frontier holds at most two blocks' products (2,000 requests, ~1 MB),
# however big the site. Where the pager gives no count, the chain is followed, its next page first.
LEAD_PAGES = 50
NEXT_PAGE_PRIORITY = 10
SCHEDULED_BY_FIRST = "books_scheduled_by_first"  # meta: a listing page the first one scheduled
START = "books_start"  # meta: a start URL, whose "N results" is what the site announces it holds


def _block(page: int) -> int:
    return (page - 1) // LEAD_PAGES


def listing_priority(page: int) -> int:
    """Listing page ``page`` (of a pager with a count): after block b-1's products, before block b's."""
    return 3 - 2 * _block(page)


def product_priority(page: int | None) -> int:
    """The products of listing page ``page``; 0 where the pager gives no count."""
    return 0 if page is None else -2 * _block(page)


class BooksSpider(scrapy.Spider):
    """Follows the listing pager from ``start_url`` and visits every product page.

    Arguments: ``-a start_url=URL`` (default: the real site's home page); several URLs separated by
    spaces crawl several sites in one run.
    """

    name = "books"
    default_start_url = "https://books.toscrape.com/"
    custom_settings = {
        # The catalogue has no <meta http-equiv="refresh"> pages, and looking for one costs every
        # response a scan of its text: 0.23 ms of the crawl's ~3.8 ms of CPU per page (measured
        # on the local site, 2,000 books, median of 4 alternating runs).
        "METAREFRESH_ENABLED": False,
    }

    def __init__(self, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url or self.default_start_url
        self.start_urls = start_urls(self.start_url)
        self.allowed_domains = sorted({urlsplit(url).hostname or "" for url in self.start_urls})

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.start_urls:
            yield scrapy.Request(url, callback=self.parse, meta={START: True})

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        listing = parse_listing(response.text, response.url)
        if response.meta.get(START) and listing.announced is not None:
            self.crawler.stats.inc_value(ANNOUNCED_ITEMS, listing.announced)  # checked by scraper.monitors
        priority = product_priority(listing.page)
        for url in listing.product_urls:
            yield scrapy.Request(url, callback=self.parse_book, priority=priority)
        later = listing.later_page_urls()
        if later is None:  # the pager gives no count: follow the chain
            if listing.next_url:
                yield scrapy.Request(listing.next_url, callback=self.parse, priority=NEXT_PAGE_PRIORITY)
        elif not response.meta.get(SCHEDULED_BY_FIRST):  # a start page, or one fed in from outside
            for page, url in enumerate(later, start=(listing.page or 0) + 1):
                yield scrapy.Request(url, callback=self.parse, priority=listing_priority(page),
                                     meta={SCHEDULED_BY_FIRST: True})

    def parse_book(self, response: Response) -> Iterator[BookItem]:
        yield parse_book(response.text, response.url, scraped_at=datetime.now(UTC))
