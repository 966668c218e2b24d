from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from localsite.quotes import QuoteCatalog, QuotesSite
from scraper.items import QuoteItem
from scraper.pages.errors import PageParseError
from scraper.pages.quotes import page_number, parse_page, raw_name, with_page

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
URL = "https://quotes.toscrape.com/api/quotes?page=1"

# The real API's shape (quotes.toscrape.com/api/quotes?page=1), content made up.
REAL_SHAPE = """{
  "has_next": true,
  "page": 1,
  "quotes": [
    {"author": {"goodreads_link": "/author/show/9810.Ada_Example", "name": "Ada Example",
                "slug": "Ada-Example"},
     "tags": ["change", "deep-thoughts"],
     "text": "\\u201cWhat we build changes how we think.\\u201d"},
    {"author": {"goodreads_link": "/author/show/1077326.J_K_Example", "name": "J.K. Example",
                "slug": "J-K-Example"},
     "tags": [],
     "text": "\\u201cIt is our choices that show what we are.\\u201d"}
  ],
  "tag": null,
  "top_ten_tags": [["love", 14], ["inspirational", 13]]
}"""


def test_real_api_shape() -> None:
    page = parse_page(REAL_SHAPE, URL, NOW)
    assert page.number == 1 and page.errors == []
    assert page.next_url == "https://quotes.toscrape.com/api/quotes?page=2"
    first, second = page.items
    assert first == QuoteItem(
        url=URL, page=1, text="“What we build changes how we think.”", author_name="Ada Example",
        author_slug="Ada-Example",
        author_goodreads_link="https://www.goodreads.com/author/show/9810.Ada_Example",
        tags=["change", "deep-thoughts"], scraped_at=NOW)
    assert first.content_hash is None  # the normalisation pipeline's job
    assert second.tags == [] and second.author_slug == "J-K-Example"


def test_last_page_has_no_next_url_and_past_the_end_is_empty() -> None:
    catalog = QuoteCatalog(25, seed=4)
    last = parse_page(json.dumps(catalog.page(3)), URL.replace("page=1", "page=3"), NOW)
    assert last.next_url is None and len(last.items) == 5
    past = parse_page(json.dumps(catalog.page(9)), URL.replace("page=1", "page=9"), NOW)
    assert past.items == [] and past.next_url is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_generated_quote_parses_to_the_ground_truth(seed: int) -> None:
    catalog = QuoteCatalog(95, seed=seed)
    site = QuotesSite(catalog)
    base = "http://127.0.0.1:8000/"
    for number in range(1, catalog.pages + 1):
        url = f"{base}api/quotes?page={number}"
        status, body = site.render(f"api/quotes?page={number}")
        assert status == 200
        page = parse_page(body, url, NOW)
        assert page.errors == []
        expected = [q.parsed_item(base) for q in catalog if q.page == number]
        assert [_without_time(item) for item in page.items] == expected
        assert page.next_url == (f"{base}api/quotes?page={number + 1}" if number < catalog.pages else None)


def test_author_without_goodreads_link_gives_none() -> None:
    body = {"has_next": False, "page": 1, "quotes": [
        {"author": {"goodreads_link": link, "name": "A", "slug": "A"}, "tags": [], "text": "x"}
        for link in (None, "", "  ")]}
    body["quotes"].append({"author": {"name": "B", "slug": "B"}, "tags": [], "text": "y"})  # no key
    page = parse_page(json.dumps(body), URL, NOW)
    assert [item.author_goodreads_link for item in page.items] == [None] * 4


def test_a_malformed_quote_is_skipped_alone_and_the_page_reported_once() -> None:
    catalog = QuoteCatalog(30, seed=1)
    status, body = QuotesSite(catalog).render("api/quotes?page=2", malformed=True)
    page = parse_page(body, URL, NOW)
    assert len(page.items) == 9 and page.next_url is not None  # the pager still counts
    assert [(e.field, e.reason) for e in page.errors] == [("text", "quote 0: no 'text'")]
    with pytest.raises(PageParseError, match=r"field 'text': 1 of 10 quote\(s\) skipped"):
        page.raise_if_malformed()
    parse_page(REAL_SHAPE, URL, NOW).raise_if_malformed()  # nothing to report


@pytest.mark.parametrize("quote,field", [
    ("not an object", "quote"),
    ({"tags": [], "text": "x"}, "author"),
    ({"author": {"name": "A", "slug": "A"}, "tags": [], "text": "  "}, "text"),
    ({"author": {"name": "", "slug": "A"}, "tags": [], "text": "x"}, "author_name"),
    ({"author": {"name": "A"}, "tags": [], "text": "x"}, "author_slug"),
    ({"author": {"name": "A", "slug": "A"}, "text": "x"}, "tags"),
    ({"author": {"name": "A", "slug": "A"}, "tags": ["ok", 3], "text": "x"}, "tags"),
    ({"author": {"name": "A", "slug": "A", "goodreads_link": 5}, "tags": [], "text": "x"},
     "author_goodreads_link"),
])
def test_each_required_field_is_checked(quote: object, field: str) -> None:
    page = parse_page(json.dumps({"has_next": False, "page": 1, "quotes": [quote]}), URL, NOW)
    assert page.items == [] and [e.field for e in page.errors] == [field]


@pytest.mark.parametrize("body,field", [
    ("<html>rate limited</html>", "json"),
    ('{"page": 1, "has_next": false}', "quotes"),
    ('[1, 2]', "quotes"),
    ('{"page": "1", "has_next": false, "quotes": []}', "page"),
    ('{"page": 1, "has_next": "yes", "quotes": []}', "has_next"),
])
def test_a_page_that_is_not_the_api_is_refused_naming_the_field(body: str, field: str) -> None:
    with pytest.raises(PageParseError) as info:
        parse_page(body, URL, NOW)
    assert info.value.field == field and info.value.url == URL


def test_page_urls_and_raw_names() -> None:
    assert with_page("http://h/api/quotes?page=1", 2) == "http://h/api/quotes?page=2"
    assert with_page("http://h/api/quotes", 2) == "http://h/api/quotes?page=2"
    assert with_page("http://h/api/quotes?tag=love&page=3", 4) == "http://h/api/quotes?tag=love&page=4"
    assert [page_number(u) for u in ("http://h/api/quotes?page=7", "http://h/api/quotes", "http://h/?page=x")] \
        == [7, 1, 1]
    assert raw_name("http://h/api/quotes?page=12") == "page-12.json"


def _without_time(item: QuoteItem) -> dict:
    record = asdict(item)
    assert record.pop("scraped_at") == NOW and record.pop("content_hash") is None
    return record
