"""The proxy-rotation middleware's mechanism, without a reactor: settings, routing, bans, waiting."""

from __future__ import annotations

import asyncio
import time

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import DownloadConnectionRefusedError, NotConfigured
from scrapy.http import HtmlResponse, Response
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionLost

from scraper.config import InvalidSetting
from scraper.meta import DELAY_UNTIL, PROXY_BAN_TIMES, VIA_SCHEDULER
from scraper.middlewares.proxies import RotatingProxyMiddleware
from scraper.proxies.policy import BanPolicy, Verdict
from scraper.signals import dead_letter

A = "http://alice:pw-a@127.0.0.1:8001"
B = "http://bob:pw-b@127.0.0.1:8002"


class DemoSpider(Spider):
    name = "demo"


def middleware(**settings) -> RotatingProxyMiddleware:
    crawler = get_crawler(DemoSpider, settings_dict={"PROXY_LIST_ENV": "", **settings})
    crawler.spider = crawler._create_spider()
    return RotatingProxyMiddleware.from_crawler(crawler)


def route(mw: RotatingProxyMiddleware, request: Request) -> Request | None:
    request.meta.setdefault(VIA_SCHEDULER, True)
    return asyncio.run(mw.process_request(request))


def stats(mw: RotatingProxyMiddleware) -> dict:
    return mw.crawler.stats.get_stats()


def test_no_proxies_means_not_configured() -> None:
    with pytest.raises(NotConfigured):
        middleware()
    with pytest.raises(NotConfigured):
        middleware(PROXY_LIST=[A], PROXY_ENABLED=False)


@pytest.mark.parametrize(("settings", "name"), [
    ({"PROXY_LIST": "ftp://x:1"}, "PROXY_LIST"),
    ({"PROXY_LIST": [A], "PROXY_MAX_PER_PROXY": 0}, "PROXY_MAX_PER_PROXY"),
    ({"PROXY_LIST": [A], "PROXY_COOLDOWN_BASE": 10, "PROXY_COOLDOWN_MAX": 5}, "PROXY_COOLDOWN_MAX"),
    ({"PROXY_LIST": [A], "PROXY_POLICY": "no.such.Policy"}, "PROXY_POLICY"),
    ({"PROXY_LIST": [A], "PROXY_BAN_HTTP_CODES": "abc"}, "PROXY_BAN_HTTP_CODES"),
])
def test_bad_settings_fail_naming_the_setting(settings: dict, name: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        middleware(**settings)
    assert info.value.setting == name


def test_list_from_a_string_setting_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROXIES", B)
    mw = middleware(PROXY_LIST=f"{A}, {A}", PROXY_LIST_ENV="MY_PROXIES")
    assert list(mw.pool.proxies) == [A, B]


def test_routes_through_a_proxy_and_counts_by_masked_name() -> None:
    mw = middleware(PROXY_LIST=[A, B])
    first, second = Request("http://site/1"), Request("http://site/2")
    assert route(mw, first) is None and route(mw, second) is None
    assert {first.meta["proxy"], second.meta["proxy"]} == {A, B}  # least in flight: both used
    assert stats(mw)["proxy/requests/http://alice:***@127.0.0.1:8001"] == 1
    assert not any("pw-" in key for key in stats(mw))


def test_spider_chosen_proxy_and_opt_out_are_respected() -> None:
    mw = middleware(PROXY_LIST=[A])
    own = Request("http://site/", meta={"proxy": "http://mine:1"})
    skip = Request("http://site/", meta={"dont_rotate_proxy": True})
    assert route(mw, own) is None and own.meta["proxy"] == "http://mine:1"
    assert route(mw, skip) is None and "proxy" not in skip.meta


def test_a_ban_cools_the_proxy_and_reroutes_through_another() -> None:
    mw = middleware(PROXY_LIST=[A, B], PROXY_BAN_MARKERS="captcha")
    request = Request("http://site/p")
    route(mw, request)
    used = request.meta["proxy"]
    request.headers[b"Proxy-Authorization"] = b"Basic c2VjcmV0"  # as HttpProxyMiddleware leaves it
    ban = HtmlResponse(request.url, body=b"<p>Solve this CAPTCHA</p>", request=request)
    retry = mw.process_response(request, ban)
    assert isinstance(retry, Request) and retry.dont_filter and retry.meta[PROXY_BAN_TIMES] == 1
    assert retry.meta[DELAY_UNTIL] <= time.time()  # back through the scheduler, due now
    assert "proxy" not in retry.meta and b"Proxy-Authorization" not in retry.headers
    assert mw.pool.proxies[used].state.value == "cooling"
    route(mw, retry)
    assert retry.meta["proxy"] != used
    assert stats(mw)["proxy/bans/marker_captcha"] == 1


@pytest.mark.parametrize("status", [404, 429, 503, 200])
def test_site_answers_are_not_the_proxys_fault(status: int) -> None:
    mw = middleware(PROXY_LIST=[A])
    request = Request("http://site/p")
    route(mw, request)
    response = Response(request.url, status=status, request=request)
    assert mw.process_response(request, response) is response
    proxy = mw.pool.proxies[A]
    assert proxy.state.value == "good" and proxy.successes == 1 and proxy.in_flight == 0


def test_refused_connection_is_a_ban_a_dropped_one_is_a_soft_failure() -> None:
    mw = middleware(PROXY_LIST=[A, B])
    refused, dropped = Request("http://site/1"), Request("http://site/2")
    route(mw, refused), route(mw, dropped)
    assert isinstance(mw.process_exception(refused, DownloadConnectionRefusedError()), Request)
    assert mw.process_exception(dropped, ConnectionLost()) is None  # the retry layer's business
    states = {url: p.state.value for url, p in mw.pool.proxies.items()}
    assert states[refused.meta["proxy"]] == "cooling" and states[dropped.meta["proxy"]] == "good"
    assert mw.pool.proxies[dropped.meta["proxy"]].failures == 1


def test_ban_retries_run_out_the_response_goes_on_and_is_dead_lettered() -> None:
    mw = middleware(PROXY_LIST=[A], PROXY_BAN_RETRY_TIMES=1)
    records = []

    def collect(record: dict) -> None:
        records.append(record)

    mw.crawler.signals.connect(collect, signal=dead_letter)
    request = Request("http://site/p", meta={PROXY_BAN_TIMES: 1})
    route(mw, request)
    forbidden = Response(request.url, status=403, request=request)
    assert mw.process_response(request, forbidden) is forbidden
    assert records and records[0]["reason"] == "proxy_bans_exhausted"
    assert "pw-a" not in repr(records) and records[0]["proxy"] == "http://alice:***@127.0.0.1:8001"


def test_all_cooling_requests_wait_in_the_scheduler_or_go_direct() -> None:
    mw = middleware(PROXY_LIST=[A], PROXY_COOLDOWN_BASE=100, PROXY_COOLDOWN_MIN=100)
    mw.pool.banned(A)
    waiting = route(mw, Request("http://site/p"))
    assert isinstance(waiting, Request) and waiting.meta[DELAY_UNTIL] > time.time() + 50
    assert stats(mw)["proxy/waited"] == 1
    direct = middleware(PROXY_LIST=[A], PROXY_FALLBACK_DIRECT=True)
    direct.pool.banned(A)
    request = Request("http://site/p")
    assert route(direct, request) is None and "proxy" not in request.meta
    assert stats(direct)["proxy/direct"] == 1


def test_all_at_their_cap_the_request_waits_for_a_release() -> None:
    mw = middleware(PROXY_LIST=[A], PROXY_MAX_PER_PROXY=1)
    first, second = Request("http://site/1"), Request("http://site/2")
    route(mw, first)

    looks = []
    choose = mw.pool.choose
    mw.pool.choose = lambda *args: looks.append(1) or choose(*args)  # type: ignore[method-assign]

    async def scenario() -> None:
        waiter = asyncio.ensure_future(mw.process_request(second))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        assert len(looks) == 1  # it waits for a release, it does not poll the pool
        mw.left_downloader(first)  # the first request's download is over
        assert await asyncio.wait_for(waiter, 5) is None

    second.meta[VIA_SCHEDULER] = True
    asyncio.run(scenario())
    assert second.meta["proxy"] == A


def test_release_happens_once() -> None:
    mw = middleware(PROXY_LIST=[A])
    request = Request("http://site/1")
    route(mw, request)
    mw.left_downloader(request)
    mw.process_response(request, Response(request.url, request=request))
    assert mw.pool.proxies[A].in_flight == 0 and mw.pool.proxies[A].requests == 1


def test_sticky_session_keeps_its_proxy() -> None:
    mw = middleware(PROXY_LIST=[A, B])
    used = set()
    for n in range(4):
        request = Request(f"http://site/{n}", meta={"proxy_session": "login"})
        route(mw, request)
        used.add(request.meta["proxy"])
        mw.left_downloader(request)
    assert len(used) == 1


class EveryPageBans(BanPolicy):
    def classify_response(self, request, response):
        return Verdict.BAN, "custom"


def test_policy_is_replaceable() -> None:
    mw = middleware(PROXY_LIST=[A, B], PROXY_POLICY=f"{__name__}.EveryPageBans")
    request = Request("http://site/p")
    route(mw, request)
    assert isinstance(mw.process_response(request, Response(request.url, request=request)), Request)
    assert stats(mw)["proxy/bans/custom"] == 1


def test_list_file_is_reread_when_it_changes(tmp_path) -> None:
    path = tmp_path / "proxies.txt"
    path.write_text(f"# ours\n{A}\n")
    mw = middleware(PROXY_LIST_FILE=str(path))
    assert list(mw.pool.proxies) == [A]
    path.write_text(f"{A}\n{B}  # the new one\n")
    mw.tick()
    assert list(mw.pool.proxies) == [A, B] and stats(mw)["proxy/list_reloads"] == 1
