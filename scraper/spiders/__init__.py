"""Spiders: they crawl; page objects in scraper.pages parse."""

from __future__ import annotations

from urllib.parse import urlsplit

from scraper.config import InvalidArgument


def start_urls(value: str) -> list[str]:
    """The URLs of a ``start_url`` argument (several separated by spaces): absolute http(s) only, so
    a typo fails at start-up instead of crawling nothing."""
    urls = value.split()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument("start_url", value, "absolute http(s) URLs separated by spaces")
    if not urls:
        raise InvalidArgument("start_url", value, "absolute http(s) URLs separated by spaces")
    return urls
