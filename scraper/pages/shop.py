"""Product pages of a shop with schema.org markup (the ``shop`` spider): HTML text in, item out."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from scraper.items import ProductItem
from scraper.pages.books import clean
from scraper.pages.errors import PageParseError
from scraper.pages.html import Css, parse_html

_NAME = Css("main.product [itemprop=name]::text")
_SKU = Css("main.product [itemprop=sku]::text")
_PRICE = Css("main.product [itemprop=price]::text")
_CURRENCY = Css("main.product [itemprop=priceCurrency]::attr(content)")
_RATING = Css("main.product .rating::attr(data-rating)")
_REVIEWS = Css("main.product a.reviews::text")
_STOCK = Css("main.product .stock::text")
_DESCRIPTION = Css("main.product .description p::text")
_AMOUNT = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?")  # "1,249.00", "7.45"
_COUNT = re.compile(r"(\d+) reviews?")
_STOCK_STATES = {"In stock": True, "Out of stock": False}


def parse_product(html: str, url: str, scraped_at: datetime) -> ProductItem:
    """The product on ``html``; :class:`PageParseError` naming the first field it cannot read."""
    root = parse_html(html)

    def text(query: Css, field: str) -> str:
        value = clean(query.first(root) or "")
        if not value:
            raise PageParseError(url, field, "missing")
        return value

    def matched(pattern: re.Pattern[str], value: str, field: str) -> re.Match[str]:
        match = pattern.fullmatch(value)
        if match is None:
            raise PageParseError(url, field, f"unreadable: {value!r}")
        return match

    stock = text(_STOCK, "in_stock")
    if stock not in _STOCK_STATES:
        raise PageParseError(url, "in_stock", f"unreadable: {stock!r}")
    rating = int(matched(re.compile(r"[0-5]"), text(_RATING, "rating"), "rating")[0])
    return ProductItem(
        url=url, sku=text(_SKU, "sku"), name=text(_NAME, "name"),
        price=Decimal(matched(_AMOUNT, text(_PRICE, "price"), "price")[0].replace(",", "")),
        currency=text(_CURRENCY, "currency"), rating=rating,
        reviews=int(matched(_COUNT, text(_REVIEWS, "reviews"), "reviews")[1]),
        in_stock=_STOCK_STATES[stock], description=clean(" ".join(_DESCRIPTION.all(root))),
        scraped_at=scraped_at,
    )
