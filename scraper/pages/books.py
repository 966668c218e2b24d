"""Page objects for books.toscrape.com-style sites: pure functions over HTML text, no Scrapy.

``parse_listing`` finds product links and the next listing page; ``parse_book`` builds a
:class:`~scraper.items.BookItem` from a product page or raises :class:`PageParseError` naming the
field it could not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urljoin

from scraper.items import BookItem
from scraper.pages.errors import PageParseError
from scraper.pages.html import Css, Node, parse_html

RATINGS = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5}
CURRENCIES = {"£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY", "₹": "INR", "CHF": "CHF"}
# thousands grouped by commas in threes ("1,234.50"), or not at all: "1,2,3,4" is not a price
_MONEY = re.compile(r"^\s*(?:Â)?(?P<symbol>[^\d\s.,-]+)\s*(?P<amount>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*$")
_AVAILABLE = re.compile(r"\((\d+) available\)")
_PAGE_OF = re.compile(r"Page\s+(\d+)\s+of\s+(\d+)")
_NEXT_PAGE_FILE = re.compile(r"page-(\d+)\.html$")
_MORE = "...more"

_PRODUCT_LINKS = Css("article.product_pod h3 a::attr(href)")
_NEXT_PAGE = Css("ul.pager li.next a::attr(href)")
_CURRENT_PAGE = Css("ul.pager li.current::text")
_RESULTS = Css("form.form-horizontal strong::text")  # "<strong>1000</strong> results - showing <strong>21</strong> ..."
_MAIN = Css("div.product_main")
_TABLE_ROWS = Css("table.table-striped tr")
_TH = Css("th::text")
_TD = Css("td::text")
_TITLE = Css("h1::text")
_AVAILABILITY = Css("p.availability::text")
_RATING = Css("p.star-rating::attr(class)")
_IMAGE = Css("#product_gallery img::attr(src)")
_CRUMBS = Css("ul.breadcrumb li a::text")
_DESCRIPTION = Css("#product_description + p::text")


@dataclass(frozen=True, slots=True)
class Listing:
    """What a listing page links to: absolute product URLs and the next page (or None); from the
    pager's "Page 3 of 50", the page number and count; and, from "1000 results - showing 41 to 60",
    how many products this page and the later ones announce (960). Each None when the page does not say."""

    product_urls: list[str]
    next_url: str | None
    page: int | None = None
    pages: int | None = None
    announced: int | None = None

    def later_page_urls(self) -> list[str] | None:
        """Every listing page after this one, from the pager's count and the next link's
        ``page-N.html`` pattern; None if the pager does not give both (then follow ``next_url``)."""
        if self.next_url is None or self.page is None or self.pages is None:
            return None
        match = _NEXT_PAGE_FILE.search(self.next_url)
        if not match or int(match[1]) != self.page + 1:
            return None
        head, tail = self.next_url[:match.start(1)], self.next_url[match.end(1):]
        return [f"{head}{n}{tail}" for n in range(self.page + 1, self.pages + 1)]


def parse_listing(html: str, url: str) -> Listing:
    root = parse_html(html)
    products = [urljoin(url, href) for href in _PRODUCT_LINKS.all(root)]
    next_href = _NEXT_PAGE.first(root)
    position = _PAGE_OF.search(" ".join(_CURRENT_PAGE.all(root)))
    page, pages = (int(position[1]), int(position[2])) if position else (None, None)
    return Listing(products, urljoin(url, next_href) if next_href else None, page, pages,
                   _announced(_RESULTS.all(root)))


def _announced(numbers: list[str]) -> int | None:
    """Products from this listing page to the end: "1000 results - showing 41 to 60" is 960."""
    numbers = [n.strip() for n in numbers]
    if not numbers or not all(n.isdigit() for n in numbers):
        return None
    total, first = int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 1
    return max(0, total - first + 1)


def parse_book(html: str, url: str, scraped_at: datetime) -> BookItem:
    root = parse_html(html)
    main = _MAIN.all(root)
    table = {clean(_TH.first(row)): clean(_TD.first(row)) for row in _TABLE_ROWS.all(root)}

    def row(name: str, field: str) -> str:
        value = table.get(name)
        if not value:
            raise PageParseError(url, field, f'no "{name}" row in the product table')
        return value

    title = clean(_TITLE.first(*main))
    if not title:
        raise PageParseError(url, "title", "no <h1> in div.product_main")
    price_excl, currency = parse_money(row("Price (excl. tax)", "price_excl_tax"), url, "price_excl_tax")
    price_incl, _ = parse_money(row("Price (incl. tax)", "price_incl_tax"), url, "price_incl_tax")
    tax, _ = parse_money(row("Tax", "tax"), url, "tax")
    availability_text = table.get("Availability") or clean(" ".join(_AVAILABILITY.all(*main)))
    availability, in_stock = parse_availability(availability_text, url)
    image = _IMAGE.first(root)
    if not image:
        raise PageParseError(url, "image_url", "no image in #product_gallery")
    crumbs = _CRUMBS.all(root)
    if len(crumbs) < 3:
        raise PageParseError(url, "category", "breadcrumb has no category")
    return BookItem(
        url=url,
        upc=row("UPC", "upc"),
        title=title,
        category=clean(crumbs[-1]),
        product_type=row("Product Type", "product_type"),
        price_excl_tax=price_excl,
        price_incl_tax=price_incl,
        tax=tax,
        currency=currency,
        availability=availability,
        in_stock=in_stock,
        rating=parse_rating(_RATING.first(*main), url),
        num_reviews=parse_int(row("Number of reviews", "num_reviews"), url, "num_reviews"),
        description=parse_description(root),
        image_url=urljoin(url, image),
        scraped_at=scraped_at,
    )


def clean(text: str | None) -> str:
    """Collapse every run of (Unicode) whitespace to one space and strip the ends."""
    return " ".join(text.split()) if text else ""


def parse_money(text: str, url: str, field: str) -> tuple[Decimal, str]:
    """``"£51.77"`` → ``(Decimal("51.77"), "GBP")``. Exact: never goes through float."""
    match = _MONEY.match(text)
    if not match:
        raise PageParseError(url, field, f"not a price: {text!r}")
    currency = CURRENCIES.get(match["symbol"])
    if currency is None:
        raise PageParseError(url, "currency", f"unknown currency symbol {match['symbol']!r}")
    try:
        return Decimal(match["amount"].replace(",", "")), currency
    except InvalidOperation:
        raise PageParseError(url, field, f"not a price: {text!r}") from None


def parse_availability(text: str, url: str) -> tuple[int, bool]:
    """``"In stock (22 available)"`` → ``(22, True)``; ``"Out of stock"`` → ``(0, False)``."""
    if text.startswith("Out of stock"):
        return 0, False
    match = _AVAILABLE.search(text)
    if text.startswith("In stock") and match:
        return int(match[1]), True
    raise PageParseError(url, "availability", f"unrecognised availability {text!r}")


def parse_rating(css_class: str | None, url: str) -> int:
    for word in (css_class or "").split():
        if word in RATINGS:
            return RATINGS[word]
    raise PageParseError(url, "rating", f"no star-rating word in class {css_class!r}")


def parse_int(text: str, url: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PageParseError(url, field, f"not an integer: {text!r}") from None


def parse_description(root: Node) -> str:
    """The paragraph after ``#product_description``, whitespace collapsed, "...more" tail removed."""
    text = clean(" ".join(_DESCRIPTION.all(root)))
    if text.endswith(_MORE):
        text = text[: -len(_MORE)].rstrip()
    return text
