"""The books spider's crawl decisions, without a reactor: what it yields for a listing page."""

from __future__ import annotations

from scrapy import Request
from scrapy.http import HtmlResponse

from localsite.catalog import Catalog
from localsite.server import BooksSite
from scraper.spiders.books import SCHEDULED_BY_FIRST, BooksSpider

BASE = "http://127.0.0.1:8000/"
SITE = BooksSite(Catalog(100, seed=2))  # 5 listing pages of 20 books


def listing_response(page: int, meta: dict | None = None, without_count: bool = False) -> HtmlResponse:
    path = "index.html" if page == 1 else f"catalogue/page-{page}.html"
    status, html = SITE.render(path)
    assert status == 200
    if without_count:
        html = html.replace(f"Page {page} of 5", "")
    return HtmlResponse(BASE + path, body=html.encode(), encoding="utf-8",
                        request=Request(BASE + path, meta=meta or {}))


def split(spider: BooksSpider, requests: list) -> tuple[list[Request], list[Request]]:
    assert all(isinstance(r, Request) for r in requests)
    return ([r for r in requests if r.callback == spider.parse_book],
            [r for r in requests if r.callback == spider.parse])


def test_first_listing_page_schedules_every_later_page_after_the_products() -> None:
    spider = BooksSpider(start_url=BASE)
    products, listings = split(spider, list(spider.parse(listing_response(1))))
    assert len(products) == 20
    assert [r.url for r in listings] == [BASE + f"catalogue/page-{n}.html" for n in range(2, 6)]
    assert all(r.meta[SCHEDULED_BY_FIRST] for r in listings)
    # products first: the frontier holds a few pages' products at a time, not the whole catalogue's
    assert max(r.priority for r in listings) < min(r.priority for r in products)


def test_a_page_scheduled_by_the_first_yields_only_its_products() -> None:
    spider = BooksSpider(start_url=BASE)
    products, listings = split(spider, list(spider.parse(listing_response(3, {SCHEDULED_BY_FIRST: True}))))
    assert len(products) == 20 and listings == []


def test_a_later_page_given_as_start_schedules_the_pages_after_it() -> None:
    spider = BooksSpider(start_url=BASE)
    _, listings = split(spider, list(spider.parse(listing_response(3))))  # e.g. fed in through Redis
    assert [r.url for r in listings] == [BASE + "catalogue/page-4.html", BASE + "catalogue/page-5.html"]


def test_without_a_page_count_it_follows_the_next_link() -> None:
    spider = BooksSpider(start_url=BASE)
    products, listings = split(spider, list(spider.parse(listing_response(2, without_count=True))))
    assert [r.url for r in listings] == [BASE + "catalogue/page-3.html"]
    assert listings[0].priority > products[0].priority


def test_last_listing_page_has_no_next() -> None:
    spider = BooksSpider(start_url=BASE)
    products, listings = split(spider, list(spider.parse(listing_response(5))))
    assert len(products) == 20 and listings == []
