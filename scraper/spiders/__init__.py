"""Spiders: they crawl; page objects in scraper.pages parse."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from scraper.config import CannotStart, InvalidArgument

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


def page_parser(module: str, spider: str, function: str = "parse_page") -> Callable[..., Any]:
    """``module.function``, imported when the spider is created (not when the project loads, so a spider
    generated before its page module breaks only itself); a missing one stops the crawl naming both."""
    try:
        return getattr(import_module(module), function)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise CannotStart(f"Spider {spider!r} needs its page module {module} (a {function}() function, "
                          f"docs/add-a-spider.md step 1): not found") from None
    except AttributeError:
        raise CannotStart(f"Spider {spider!r} needs {function}() in {module}: not found") from None
