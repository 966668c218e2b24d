"""The local site over real HTTP: every fault knob, stats and run-time control."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime

import pytest

from localsite.faults import unit_hash
from localsite.process import LocalSite


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_serves_pages_robots_and_counts_them(books_site: LocalSite) -> None:
    status, headers, body = fetch(books_site.url + "index.html")
    assert status == 200 and headers["Content-Type"] == "text/html"
    assert b'<li class="next"><a href="catalogue/page-2.html">next</a></li>' in body
    assert b"1000</strong> results" in body
    assert fetch(books_site.url + "robots.txt")[0] == 200
    assert fetch(books_site.url + "missing.html")[0] == 404
    stats = books_site.stats(paths=True)
    assert stats["paths"]["index.html"] >= 1 and stats["statuses"]["404"] >= 1


def test_counts_connections_not_requests() -> None:
    with LocalSite(books=20) as site:
        host, port = site.url.split("//")[1].rstrip("/").split(":")
        for _ in range(2):  # two connections, three requests on each (kept alive)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            for _ in range(3):
                conn.request("GET", "/index.html")
                assert conn.getresponse().read()
            conn.close()
        stats = site.stats()
        assert (stats["requests"], stats["connections"]) == (6, 2)
        site.reset()
        assert site.stats()["connections"] == 0


def fault_path(seed: int, rate: float, kind_index: int, kinds: int) -> str:
    """A product-like path that the site's fault plan will fail with kinds[kind_index]."""
    for i in range(100_000):
        path = f"catalogue/x_{i}/index.html"
        if unit_hash(seed, "fault", path) < rate and int(unit_hash(seed, "kind", path) * kinds) == kind_index:
            return path
    raise AssertionError("no such path")


@pytest.mark.parametrize("kind", ["500", "503", "429", "429-date", "drop"])
def test_transient_faults(kind: str) -> None:
    with LocalSite(books=20, seed=4, fault_rate=0.5, fault_kinds=kind, fault_times=2,
                   fault_retry_after=7) as site:
        path = fault_path(4, 0.5, 0, 1)
        for _ in range(2):
            if kind == "drop":
                conn = http.client.HTTPConnection(site.url[7:-1], timeout=5)
                conn.request("GET", "/" + path)
                with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
                    conn.getresponse()
                conn.close()
                continue
            status, headers, _ = fetch(site.url + path)
            assert status == int(kind[:3])
            if kind == "429":
                assert headers["Retry-After"] == "7"
            if kind == "429-date":
                wait = parsedate_to_datetime(headers["Retry-After"]).timestamp() - time.time()
                assert 5 < wait <= 9
        assert fetch(site.url + path)[0] == 404  # third attempt passes the fault (path is fake)
        assert site.stats()["dropped"] == (2 if kind == "drop" else 0)


def test_token_bucket_rate_limit_and_runtime_control() -> None:
    with LocalSite(books=20, rate_limit=2, burst=3, retry_after="date") as site:
        statuses = [fetch(site.url + "index.html")[0] for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        status, headers, _ = fetch(site.url + "index.html")
        assert status == 429 and parsedate_to_datetime(headers["Retry-After"])
        site.control(rate_limit=0)
        assert [fetch(site.url + "index.html")[0] for _ in range(10)] == [200] * 10
        site.reset()
        assert site.stats()["requests"] == 0


def test_latency_and_malformed_pages() -> None:
    with LocalSite(books=20, latency_ms=150, malformed_rate=1.0) as site:
        started = time.perf_counter()
        status, _, body = fetch(site.url + site.catalog.book(0).path)
        assert time.perf_counter() - started >= 0.15
        assert status == 200 and b"<th>UPC</th>" not in body
