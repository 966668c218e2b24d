"""Page object for quotes.toscrape.com-style JSON APIs (``/api/quotes?page=N``): JSON text in,
:class:`~scraper.items.QuoteItem` objects out, no Scrapy.

Values are kept as served (curly quotes, odd spacing, tag case): cleaning them is the normaliser's
job, so replaying the raw archive through a fixed normaliser can recover what a crawl got wrong.

A body that is not the API's JSON raises :class:`PageParseError` (nothing on it is usable). A quote
missing a required field is skipped and listed in :attr:`QuotesPage.errors`, so the page's other
quotes and its pager still count; :meth:`QuotesPage.raise_if_malformed` then reports the page once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from scraper.items import QuoteItem
from scraper.pages.errors import PageParseError

GOODREADS = "https://www.goodreads.com/"  # the API's goodreads_link values are paths on this site


@dataclass(frozen=True, slots=True)
class QuotesPage:
    """One API page: its number, its well-formed quotes, the next page (or None), what was skipped."""

    number: int
    items: list[QuoteItem]
    next_url: str | None
    errors: list[PageParseError]

    def raise_if_malformed(self) -> None:
        """One :class:`PageParseError` for the page when any quote was skipped (call it after using
        the good quotes and the pager: the malformed-page middleware counts and logs it)."""
        if self.errors:
            first = self.errors[0]
            total = len(self.items) + len(self.errors)
            raise PageParseError(first.url, first.field,
                                 f"{len(self.errors)} of {total} quote(s) skipped; first: {first.reason}")


def parse_page(text: str, url: str, scraped_at: datetime) -> QuotesPage:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PageParseError(url, "json", f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("quotes"), list):
        raise PageParseError(url, "quotes", "no list of quotes")
    number = data.get("page")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise PageParseError(url, "page", f"not a page number: {number!r}")
    has_next = data.get("has_next")
    if not isinstance(has_next, bool):
        raise PageParseError(url, "has_next", f"not a boolean: {has_next!r}")
    items, errors = [], []
    for position, raw in enumerate(data["quotes"]):
        try:
            items.append(parse_quote(raw, url, number, scraped_at, position))
        except PageParseError as exc:
            errors.append(exc)
    return QuotesPage(number, items, with_page(url, number + 1) if has_next else None, errors)


def parse_quote(raw: Any, url: str, page: int, scraped_at: datetime, position: int = 0) -> QuoteItem:
    """One element of the API's ``quotes`` list; ``position`` only names it in errors."""
    where = f"quote {position}"
    if not isinstance(raw, dict):
        raise PageParseError(url, "quote", f"{where}: not an object")
    author = raw.get("author")
    if not isinstance(author, dict):
        raise PageParseError(url, "author", f"{where}: no author object")
    link = author.get("goodreads_link")
    if link is not None and not isinstance(link, str):
        raise PageParseError(url, "author_goodreads_link", f"{where}: not a string: {link!r}")
    tags = raw.get("tags")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise PageParseError(url, "tags", f"{where}: not a list of strings: {tags!r}")
    return QuoteItem(
        url=url,
        page=page,
        text=_required(raw, "text", url, "text", where),
        author_name=_required(author, "name", url, "author_name", where),
        author_slug=_required(author, "slug", url, "author_slug", where),
        author_goodreads_link=urljoin(GOODREADS, link.strip()) if link and link.strip() else None,
        tags=list(tags),
        scraped_at=scraped_at,
    )


def _required(obj: dict[str, Any], key: str, url: str, field: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PageParseError(url, field, f"{where}: no {key!r}")
    return value


def with_page(url: str, page: int) -> str:
    """``url`` with its ``page`` query parameter set to ``page`` (other parameters kept, in order)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("page", str(page))])))


def page_number(url: str) -> int:
    """The ``page`` query parameter of an API URL (1 when absent, as the API assumes)."""
    values = [v for k, v in parse_qsl(urlsplit(url).query) if k == "page"]
    return int(values[-1]) if values and values[-1].isdigit() else 1


def raw_name(url: str) -> str:
    """The raw-archive file name of an API page: ``page-N.json``."""
    return f"page-{page_number(url)}.json"
