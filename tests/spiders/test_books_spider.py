"""The books spider's crawl decisions, without a reactor: what it yields for a listing page."""

from __future__ import annotations

import heapq
import itertools

from scrapy import Request
from scrapy.http import HtmlResponse

from localsite.catalog import Catalog
from localsite.server import BooksSite
from scraper.spiders.books import LEAD_PAGES, SCHEDULED_BY_FIRST, BooksSpider

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


def test_first_listing_page_schedules_every_later_page_ahead_of_the_products() -> None:
    spider = BooksSpider(start_url=BASE)
    products, listings = split(spider, list(spider.parse(listing_response(1))))
    assert len(products) == 20
    assert [r.url for r in listings] == [BASE + f"catalogue/page-{n}.html" for n in range(2, 6)]
    assert all(r.meta[SCHEDULED_BY_FIRST] for r in listings)
    # five pages are one block: discovery first, so a listing page that must wait holds up nothing
    assert min(r.priority for r in listings) > max(r.priority for r in products)


def test_discovery_runs_one_block_ahead_of_the_products() -> None:
    """A 130-page catalogue crawled one request at a time from a priority queue that pops as Scrapy's
    does (highest priority first, last in first out among equals), with the spider's own requests:
    each listing page is fetched after the products of two blocks back and before those of its own
    block, and the frontier never holds more than two blocks' products."""
    pages = 130
    site = BooksSite(Catalog(20 * pages, seed=2))
    spider = BooksSpider(start_url=BASE)
    queue: list[tuple[int, int, Request]] = []
    order = itertools.count()
    found_on: dict[str, int] = {}  # request URL -> the listing page that yielded it

    def fetch(request: Request, page: int) -> None:
        path = "index.html" if page == 1 else f"catalogue/page-{page}.html"
        html = site.render(path)[1]
        response = HtmlResponse(BASE + path, body=html.encode(), encoding="utf-8", request=request)
        for new in spider.parse(response):
            found_on[new.url] = page
            heapq.heappush(queue, (-new.priority, -next(order), new))

    fetch(Request(BASE), 1)
    fetched: list[tuple[str, int]] = []  # ("listing" | "product", block)
    most_queued = 0
    while queue:
        most_queued = max(most_queued, sum(1 for *_, r in queue if r.callback == spider.parse_book))
        request = heapq.heappop(queue)[2]
        if request.callback == spider.parse:
            page = int(request.url.rsplit("page-", 1)[1].split(".")[0])
            fetched.append(("listing", (page - 1) // LEAD_PAGES))
            fetch(request, page)
        else:
            fetched.append(("product", (found_on[request.url] - 1) // LEAD_PAGES))
    assert sum(kind == "product" for kind, _ in fetched) == 20 * pages
    for at, (kind, block) in enumerate(fetched):
        if kind == "listing":
            assert ("product", block) not in fetched[:at]
            assert ("product", block - 2) not in fetched[at:]
    assert most_queued <= 2 * LEAD_PAGES * 20


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
