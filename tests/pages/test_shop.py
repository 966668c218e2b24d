"""The shop's product pages, from saved copies (tests/fixtures/shop) and their expected values."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from scraper.pages.errors import PageParseError
from scraper.pages.shop import parse_product

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shop"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
BASE, NOW = "https://shop.example/", datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("row", EXPECTED, ids=lambda row: row["sku"])
def test_every_saved_product_page_parses_to_its_values(row: dict) -> None:
    item = parse_product((FIXTURES / row["url"]).read_text(), BASE + row["url"], scraped_at=NOW)
    assert asdict(item) == {**row, "url": BASE + row["url"], "price": Decimal(row["price"]), "scraped_at": NOW}


@pytest.mark.parametrize("old,new,field", [
    ('itemprop="sku">AN-1001', 'itemprop="sku">', "sku"),
    ('itemprop="price">189.00', 'itemprop="price">1,89.0', "price"),
    ('data-rating="5"', 'data-rating="five"', "rating"),
    ("12 reviews", "many reviews", "reviews"),
    ("In stock", "Ask us", "in_stock"),
])
def test_a_page_without_a_readable_field_raises_naming_it(old: str, new: str, field: str) -> None:
    html = (FIXTURES / "product" / "an-1001.html").read_text()
    assert old in html
    with pytest.raises(PageParseError) as raised:
        parse_product(html.replace(old, new), BASE + "product/an-1001.html", scraped_at=NOW)
    assert raised.value.field == field
