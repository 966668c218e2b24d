"""Item classes: the typed contract between spiders, pipelines and the Parquet datasets.

Each is a dataclass (itemadapter understands them); its annotations declare the Arrow schema
(see :mod:`scraper.parquet.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import pyarrow as pa

from scraper.parquet.schema import arrow, money


@dataclass(slots=True)
class BookItem:
    """One book of a books.toscrape.com-style catalogue."""

    url: str
    upc: str
    title: str
    category: str
    product_type: str
    price_excl_tax: Decimal = field(metadata=money())
    price_incl_tax: Decimal = field(metadata=money())
    tax: Decimal = field(metadata=money())
    currency: str  # ISO 4217, from the price's symbol
    availability: int  # the N in "In stock (N available)"; 0 when out of stock
    in_stock: bool
    rating: int  # 1-5, from the star-rating class
    num_reviews: int
    description: str  # whitespace collapsed, "" when the page has none
    image_url: str  # absolute
    scraped_at: datetime  # UTC
    # Derived by the normalisation pipeline (None when it is off).
    title_normalized: str | None = None  # case-folded, accents stripped: for matching
    series: str | None = None  # "Provence" in "A Year in Provence (Provence #1)"
    series_number: float | None = None  # 1.0 there
    content_hash: str | None = None  # SHA-256 of the normalised content: changes iff content does
    description_simhash: int | None = field(default=None, metadata=arrow(pa.uint64()))
    word_count: int | None = None  # words in the description

    normalizer: ClassVar[str] = "scraper.normalize.books.normalize_book"
    # Minimum share of items with a value, where the site leaves a field empty on purpose (checked at
    # close by scraper.monitors; other required fields: MONITOR_MIN_FIELD_COVERAGE).
    field_coverage: ClassVar[dict[str, float]] = {"description": 0.5}


@dataclass(slots=True)
class QuoteItem:
    """One quote of a quotes.toscrape.com-style JSON API (``/api/quotes?page=N``)."""

    url: str  # the API page it came from
    page: int  # that page's number, as the API reports it
    text: str  # normalised: enclosing quote marks stripped, NFKC, whitespace collapsed
    author_name: str
    author_slug: str  # the site's author id, e.g. "Albert-Einstein"
    author_goodreads_link: str | None  # absolute; None when the API gives none
    tags: list[str]  # normalised: lower case, blanks and duplicates dropped, first-seen order
    scraped_at: datetime  # UTC: when the page was fetched (kept in the raw archive for replays)
    # Derived by the normalisation pipeline (None when it is off).
    content_hash: str | None = None  # SHA-256 of text, author and tags: equal iff the quote is

    normalizer: ClassVar[str] = "scraper.normalize.quotes.normalize_quote"
    field_coverage: ClassVar[dict[str, float]] = {"tags": 0.5}  # many quotes have none (see BookItem)


@dataclass(slots=True)
class ProductItem:
    """One product of a shop found through its sitemap (the ``shop`` spider, docs/add-a-spider.md)."""

    url: str
    sku: str
    name: str
    price: Decimal = field(metadata=money())
    currency: str  # ISO 4217, from the page's itemprop="priceCurrency"
    rating: int  # 0-5 stars
    reviews: int
    in_stock: bool
    description: str  # "" when the page has none
    scraped_at: datetime  # UTC

    field_coverage: ClassVar[dict[str, float]] = {"description": 0.5}  # (see BookItem)
