"""The local quotes API over HTTP: the real API's shape, deterministic, with the books site's knobs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from localsite.process import LocalQuotesSite
from localsite.quotes import QUOTES_PER_PAGE, QuoteCatalog


def fetch(url: str) -> tuple[int, str, dict | str]:
    """Status, content type, and the body (parsed when it is JSON)."""
    try:
        resp = urllib.request.urlopen(url)
    except urllib.error.HTTPError as exc:
        resp = exc
    with resp:
        content_type, body = resp.headers["Content-Type"], resp.read().decode()
    return resp.status, content_type, json.loads(body) if "json" in content_type else body


@pytest.fixture(scope="module")
def api() -> LocalQuotesSite:
    with LocalQuotesSite(quotes=25, seed=7) as site:
        yield site


def test_pages_like_the_real_api(api: LocalQuotesSite) -> None:
    status, content_type, first = fetch(api.start_url)
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    assert set(first) == {"has_next", "page", "quotes", "tag", "top_ten_tags"}
    assert first["has_next"] is True and first["page"] == 1 and first["tag"] is None
    assert len(first["quotes"]) == QUOTES_PER_PAGE
    assert set(first["quotes"][0]) == {"author", "tags", "text"}
    assert set(first["quotes"][0]["author"]) == {"goodreads_link", "name", "slug"}
    assert first == QuoteCatalog(25, seed=7).page(1)  # deterministic: the catalogue is the truth
    assert fetch(api.url + "api/quotes")[2] == first  # no page parameter = page 1
    last = fetch(api.url + "api/quotes?page=3")[2]
    assert last["has_next"] is False and len(last["quotes"]) == 5
    past = fetch(api.url + "api/quotes?page=4")[2]
    assert past["has_next"] is False and past["quotes"] == []
    assert all(isinstance(tag, str) and count > 0 for tag, count in first["top_ten_tags"])


def test_bad_requests(api: LocalQuotesSite) -> None:
    assert fetch(api.url + "api/quotes?page=0")[0] == 400
    assert fetch(api.url + "api/quotes?page=abc")[0] == 400
    assert fetch(api.url + "api/authors")[0] == 404


def test_stats_count_pages_by_query_and_faults_apply(api: LocalQuotesSite) -> None:
    api.reset()
    fetch(api.url + "api/quotes?page=2")
    assert api.stats(paths=True)["paths"] == {"api/quotes?page=2": 1}
    api.control(fault_rate=1.0, fault_kinds=["503"], fault_times=1)
    try:
        assert fetch(api.url + "api/quotes?page=3")[0] == 503
        assert fetch(api.url + "api/quotes?page=3")[0] == 200  # transient: the second try works
    finally:
        api.control(fault_rate=0.0)
