from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from localsite.catalog import Catalog
from localsite.render import listing_page, product_page
from scraper.normalize.books import DERIVED_FIELDS
from scraper.pages.books import clean, parse_book, parse_listing, parse_money
from scraper.pages.errors import PageParseError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "books"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE = "https://books.toscrape.com/"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(200, seed=3)


def parse(book, **kwargs):
    item = parse_book(product_page(book, **kwargs), BASE + book.path, NOW)
    record = asdict(item)
    assert record.pop("scraped_at") == NOW
    assert [record.pop(name) for name in DERIVED_FIELDS] == [None] * len(DERIVED_FIELDS)  # pipeline's job
    return record


def test_saved_page_with_tbody_entities_non_ascii_and_thousands() -> None:
    url = BASE + "catalogue/le-petit-cafe-the-moons-secret_42/index.html"
    item = parse_book((FIXTURES / "product_saved.html").read_text("utf-8"), url, NOW)
    assert item.title == 'Le Petit Café & the Moon\'s "Secret"'
    assert item.category == "Food and Drink"
    assert item.upc == "0c7e0d5b9f7a1e23"
    assert (item.price_excl_tax, item.price_incl_tax, item.tax) == (
        Decimal("1051.07"), Decimal("1261.28"), Decimal("210.21"))
    assert item.currency == "GBP"
    assert (item.availability, item.in_stock, item.rating, item.num_reviews) == (3, True, 4, 7)
    assert item.description == "A tale of crème brûlée, naïve dreams and <moonlight> in Kraków — déjà vu."
    assert item.image_url == "https://books.toscrape.com/media/cache/9a/0f/9a0f3c.jpg"
    assert item.product_type == "Books"


def test_every_generated_book_parses_to_its_ground_truth(catalog: Catalog) -> None:
    for book in catalog:
        assert parse(book) == book.expected_item(BASE), book.path


@pytest.mark.parametrize("edge", ["no_description", "out_of_stock", "special_title", "taxed"])
def test_edge_cases(catalog: Catalog, edge: str) -> None:
    book = catalog.book(0)
    variant = {
        "no_description": replace(book, description=None),
        "out_of_stock": replace(book, availability=0),
        "special_title": replace(book, title="Tom & Jerry's <Guide> to \"東京\" — Ünïcode"),
        "taxed": replace(book, price_excl_tax=Decimal("10.00"), tax=Decimal("2.00")),
    }[edge]
    record = parse(variant)
    assert record == variant.expected_item(BASE)
    if edge == "no_description":
        assert record["description"] == ""
    if edge == "out_of_stock":
        assert (record["availability"], record["in_stock"]) == (0, False)
    if edge == "taxed":
        assert record["price_incl_tax"] == Decimal("12.00")
        assert str(record["price_incl_tax"]) == "12.00"  # exact decimal, scale kept


def test_missing_upc_raises_naming_the_field(catalog: Catalog) -> None:
    with pytest.raises(PageParseError) as info:
        parse(catalog.book(1), malformed=True)
    assert info.value.field == "upc"
    assert catalog.book(1).path in str(info.value)


@pytest.mark.parametrize("html,field", [
    ("<html><body><p>nothing here</p></body></html>", "title"),
    ('<div class="product_main"><h1>T</h1></div><table class="table table-striped">'
     "<tr><th>Price (excl. tax)</th><td>12.00 zł</td></tr></table>", "price_excl_tax"),
])
def test_garbage_pages_raise_parse_errors(html: str, field: str) -> None:
    with pytest.raises(PageParseError) as info:
        parse_book(html, BASE + "x", NOW)
    assert info.value.field == field


@pytest.mark.parametrize("path,page,link,expected_first,expected_next", [
    ("index.html", 1, "catalogue/page-{n}.html", "catalogue/", "catalogue/page-2.html"),
    ("catalogue/page-2.html", 2, "page-{n}.html", "catalogue/", "catalogue/page-3.html"),
    ("catalogue/page-10.html", 10, "page-{n}.html", "catalogue/", None),
])
def test_listing_links_resolve_at_every_depth(catalog: Catalog, path: str, page: int, link: str,
                                              expected_first: str, expected_next: str | None) -> None:
    html = listing_page(catalog, path, "All products", list(range(catalog.n)), page, link)
    listing = parse_listing(html, BASE + path)
    start = (page - 1) * 20
    assert listing.product_urls == [BASE + catalog.book(i).path for i in range(start, start + 20)]
    assert listing.next_url == (BASE + expected_next if expected_next else None)
    assert all(u.startswith(BASE + expected_first) for u in listing.product_urls)
    assert (listing.page, listing.pages) == (page, catalog.n // 20)
    assert listing.announced == catalog.n - start  # "N results - showing start+1 to ...": from here on
    later = listing.later_page_urls()
    if expected_next:  # every later page, in the next link's form
        assert later == [BASE + expected_next.replace(f"page-{page + 1}", f"page-{n}")
                         for n in range(page + 1, catalog.n // 20 + 1)]
    else:
        assert later is None  # the last page


def test_later_pages_are_unknown_when_the_pager_does_not_count(catalog: Catalog) -> None:
    html = listing_page(catalog, "index.html", "All products", list(range(catalog.n)), 1, "catalogue/page-{n}.html")
    listing = parse_listing(html.replace("Page 1 of", "Seite 1 von"), BASE + "index.html")
    assert (listing.page, listing.pages, listing.later_page_urls()) == (None, None, None)
    assert listing.next_url == BASE + "catalogue/page-2.html"


@pytest.mark.parametrize("form,announced", [
    ("<strong>1</strong> results.", 1),  # the real site, when one page holds them all
    ("<strong>1000</strong> results - showing <strong>981</strong> to <strong>1000</strong>.", 20),
    ("results", None),
    ("<strong>many</strong> results", None),
])
def test_the_announced_count_is_what_this_page_and_the_later_ones_hold(form: str, announced: int | None) -> None:
    html = f'<form method="get" class="form-horizontal">{form}</form>'
    assert parse_listing(html, BASE).announced == announced


def test_category_listing_links_climb_three_levels(catalog: Catalog) -> None:
    category = catalog.categories[0]
    path = category.path + "index.html"
    indices = catalog.books_in(category)
    html = listing_page(catalog, path, category.name, indices, 1, "page-{n}.html")
    assert '"../../../' in html  # relative links, as on the real site
    listing = parse_listing(html, BASE + path)
    assert listing.product_urls == [BASE + catalog.book(i).path for i in indices[:20]]
    if len(indices) > 20:
        assert listing.later_page_urls()[0] == BASE + category.path + "page-2.html"


def test_listing_truncates_long_titles_but_links_the_full_one(catalog: Catalog) -> None:
    long_book = next(b for b in catalog if len(b.title.split()) > 4)
    html = listing_page(catalog, "index.html", "All", [long_book.index], 1, "catalogue/page-{n}.html")
    assert " ...</a>" in html
    assert parse(long_book)["title"] == long_book.title


@pytest.mark.parametrize("text,expected", [
    ("£51.77", (Decimal("51.77"), "GBP")),
    ("Â£51.77", (Decimal("51.77"), "GBP")),  # mis-decoded UTF-8, as some caches serve it
    ("$ 1,000.50", (Decimal("1000.50"), "USD")),
    ("€0.00", (Decimal("0.00"), "EUR")),
])
def test_parse_money_is_exact(text: str, expected: tuple[Decimal, str]) -> None:
    assert parse_money(text, "u", "price") == expected


@pytest.mark.parametrize("text", ["£1,2,3,4", "£1,23.00", "£12,3456.00", "£.50", "£1.2.3"])
def test_parse_money_refuses_what_is_not_a_price(text: str) -> None:
    with pytest.raises(PageParseError, match="not a price"):
        parse_money(text, "u", "price")


def test_clean_collapses_unicode_whitespace() -> None:
    assert clean("  a\u00a0\n\t b  ") == "a b"
    assert clean(None) == ""
