"""User-Agent rotation: scrapy-fake-useragent with our provider, and the package's pitfalls closed."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy import Request, Spider
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from localsite.process import LocalSite
from scraper import settings as project_settings
from scraper.config import InvalidSetting
from scraper.meta import ROUTED_VIA
from scraper.middlewares.useragent import RotatingUserAgentMiddleware
from scraper.useragents import BrowserUserAgentProvider
from tests.helpers import run_crawl

PROJECT = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}


class DemoSpider(Spider):
    name = "demo"


def middleware(**settings) -> RotatingUserAgentMiddleware:
    crawler = get_crawler(DemoSpider, settings_dict={**PROJECT, **settings})
    crawler.spider = crawler._create_spider()
    return RotatingUserAgentMiddleware.from_crawler(crawler)


def agent(mw: RotatingUserAgentMiddleware, request: Request) -> str:
    mw.process_request(request)
    return request.headers[b"User-Agent"].decode()


def test_every_request_gets_a_desktop_browser_ua_never_scrapys() -> None:
    mw = middleware()
    agents = {agent(mw, Request(f"http://site/{n}")) for n in range(200)}
    assert len(agents) > 20
    assert not [a for a in agents if "Scrapy" in a or "Android" in a or "iPhone" in a]
    assert mw.crawler.stats.get_value("useragent/rotated") == 200


def test_providers_given_as_a_string_are_a_list() -> None:
    """``-s FAKEUSERAGENT_PROVIDERS=a,b`` must not be read character by character."""
    mw = middleware(FAKEUSERAGENT_PROVIDERS="no.such.Provider, scraper.useragents.BrowserUserAgentProvider")
    assert isinstance(mw._ua_provider, BrowserUserAgentProvider)


def test_no_provider_loads_fails_at_start_up_instead_of_using_scrapys_ua() -> None:
    with pytest.raises(InvalidSetting) as info:
        middleware(FAKEUSERAGENT_PROVIDERS="no.such.Provider")
    assert info.value.setting == "FAKEUSERAGENT_PROVIDERS"


@pytest.mark.parametrize(("settings", "name"), [
    ({"FAKEUSERAGENT_FALLBACK": None}, "FAKEUSERAGENT_FALLBACK"),
    ({"USERAGENT_BROWSERS": "NoSuchBrowser"}, "USERAGENT_BROWSERS"),
    ({"USERAGENT_STICKY": "always"}, "USERAGENT_STICKY"),
])
def test_bad_settings_fail_naming_the_setting(settings: dict, name: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        middleware(**settings)
    assert info.value.setting == name


def test_platforms_and_browsers_are_configurable() -> None:
    provider = BrowserUserAgentProvider(Settings({**PROJECT, "USERAGENT_PLATFORMS": "mobile",
                                                  "USERAGENT_BROWSERS": "Chrome Mobile",
                                                  "USERAGENT_OS": "Android"}))
    assert all("Android" in provider.get_random_ua() for _ in range(50))


def test_spider_set_ua_and_opt_out_are_kept() -> None:
    mw = middleware()
    own = Request("http://site/", headers={"User-Agent": "MyBot/1.0"})
    assert agent(mw, own) == "MyBot/1.0"
    skip = Request("http://site/", meta={"dont_rotate_user_agent": True})
    mw.process_request(skip)
    assert b"User-Agent" not in skip.headers
    assert type(middleware(USERAGENT_ROTATION_ENABLED=False)).__name__ == "UserAgentMiddleware"  # Scrapy's


def test_sticky_per_session_and_a_fresh_ua_on_retry() -> None:
    mw = middleware(USERAGENT_STICKY="session")
    first = Request("http://site/1", meta={"proxy_session": "s"})
    same = {agent(mw, Request(f"http://site/{n}", meta={"proxy_session": "s"})) for n in range(20)}
    assert same == {agent(mw, first)}
    retry = first.replace(meta={**first.meta, "retry_times": 1})  # a copy made by the retry layer
    renewed = {agent(mw, retry)}
    assert renewed != same and mw.crawler.stats.get_value("useragent/renewed") == 1
    later = agent(mw, Request("http://site/x", meta={"proxy_session": "s"}))
    assert {later} == renewed  # the session keeps its new identity


def test_non_sticky_retry_gets_a_fresh_ua() -> None:
    mw = middleware()
    request = Request("http://site/1")
    first = agent(mw, request)
    retry = request.replace(meta={**request.meta, "retry_times": 1})
    assert agent(mw, retry) != first


def test_sticky_per_proxy_uses_the_masked_proxy_name() -> None:
    mw = middleware(RANDOM_UA_PER_PROXY=True)
    via = {ROUTED_VIA: "http://u:***@127.0.0.1:1"}
    agents = {agent(mw, Request(f"http://site/{n}", meta=dict(via))) for n in range(10)}
    assert len(agents) == 1 and all("***" in key for key in mw._by_key)


@pytest.mark.parametrize("extra,expected", [([], "scraper/0.1 (+"), (["-s", "USER_AGENT=MyBot/1.0"], "MyBot/1.0")])
def test_rotation_off_every_request_says_user_agent(tmp_path: Path, extra: list[str], expected: str) -> None:
    """A polite crawler always identifies itself: rotation off means Scrapy's USER_AGENT, never none."""
    with LocalSite(books=20, seed=3) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", "USERAGENT_ROTATION_ENABLED=False", *extra)
        agents = site.stats(agents=True)["user_agents"]
    assert result.returncode == 0, result.log[-3000:]
    assert agents and all(agent.startswith(expected) for agent in agents), agents
    assert "Deprecat" not in result.log
