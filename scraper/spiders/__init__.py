"""Spiders: they crawl; page objects in scraper.pages parse."""

from __future__ import annotations

from urllib.parse import urlsplit

from scraper.config import InvalidArgument

# Stat: the items the site says it holds (the sum over start pages of, say, "1000 results"). A spider
# that can read it sets it; scraper.monitors checks the crawl stored that many.
ANNOUNCED_ITEMS = "site/announced_items"


def start_urls(value: str) -> list[str]:
    """The URLs of a ``start_url`` argument (several separated by spaces): absolute http(s) only, so
    a typo fails at start-up instead of crawling nothing."""
    urls = value.split()
    if not urls or any(urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname
                       for url in urls):
        raise InvalidArgument("start_url", value, "absolute http(s) URLs separated by spaces")
    return urls
