"""The books spider's crawl decisions, without a reactor: what it yields for a listing page."""

from __future__ import annotations

from scrapy import Request
from scrapy.http import HtmlResponse

from scraper.localsite.catalog import Catalog
from scraper.localsite.server import BooksSite
from scraper.spiders.books import BooksSpider

BASE = "http://127.0.0.1:8000/"


def listing_response(page: int) -> HtmlResponse:
    path = f"catalogue/page-{page}.html"
    status, html = BooksSite(Catalog(100, seed=2)).render(path)
    assert status == 200
    return HtmlResponse(BASE + path, body=html.encode(), encoding="utf-8")


def test_next_listing_page_goes_before_the_products_it_lists() -> None:
    spider = BooksSpider(start_url=BASE)
    requests = list(spider.parse(listing_response(2)))
    assert all(isinstance(r, Request) for r in requests)
    products = [r for r in requests if r.callback == spider.parse_book]
    (pager,) = [r for r in requests if r.callback == spider.parse]
    assert len(products) == 20
    assert pager.url == BASE + "catalogue/page-3.html"
    assert all(pager.priority > r.priority for r in products)


def test_last_listing_page_has_no_next() -> None:
    spider = BooksSpider(start_url=BASE)
    requests = list(spider.parse(listing_response(5)))
    assert [r for r in requests if r.callback == spider.parse] == []
    assert len(requests) == 20
