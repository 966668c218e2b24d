"""``scrapy crawl shop``: every product in a shop's sitemap (a sitemap-driven catalogue; written by
following docs/add-a-spider.md, and kept as its example)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from scrapy.http import Response
from scrapy.spiders import SitemapSpider

from scraper.items import ProductItem
from scraper.pages.shop import parse_product
from scraper.spiders import start_urls


class ShopSpider(SitemapSpider):
    """Reads ``/sitemap.xml`` of ``start_url`` and visits its ``/product/`` pages; other pages are skipped.

    Arguments: ``-a start_url=URL`` (default: the example shop; point it at a local copy in tests).
    """

    name = "shop"
    default_start_url = "https://shop.example/"
    sitemap_rules = [(r"/product/", "parse_product")]

    def __init__(self, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url or self.default_start_url
        self.start_urls = start_urls(self.start_url)
        self.sitemap_urls = [urljoin(url, "/sitemap.xml") for url in self.start_urls]
        self.allowed_domains = sorted({urlsplit(url).hostname or "" for url in self.start_urls})

    def parse_product(self, response: Response) -> Iterator[ProductItem]:
        yield parse_product(response.text, response.url, scraped_at=datetime.now(UTC))
