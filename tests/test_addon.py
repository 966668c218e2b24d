"""The add-on picks the scheduler from the settings as given; the retry middleware checks the one
picked; the in-memory scheduler does not import the Redis one (no import cycle)."""

from __future__ import annotations

import pytest
from scrapy import Request, Spider
from scrapy.utils.test import get_crawler

from scraper.addon import LOCAL_SCHEDULER, REDIS_SCHEDULER
from scraper.config import InvalidSetting
from scraper.distributed import ENV_VAR
from scraper.distributed.scheduler import Codec
from scraper.middlewares.retry import BackoffRetryMiddleware
from scraper.scheduler import DelayingScheduler

ADDON = {"ADDONS": {"scraper.addon.Addon": 0}}


class DemoSpider(Spider):
    name = "demo"

    def parse_page(self, response):  # pragma: no cover - only named by a serialized request
        yield {}


@pytest.fixture(autouse=True)
def no_redis_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_without_redis_the_addon_picks_the_in_memory_scheduler() -> None:
    crawler = get_crawler(DemoSpider, ADDON)
    assert crawler.settings["SCHEDULER"] == LOCAL_SCHEDULER
    BackoffRetryMiddleware.from_crawler(crawler)  # it holds delayed requests


@pytest.mark.parametrize("how", ["setting", "environment"])
def test_with_redis_the_addon_picks_the_leasing_scheduler(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dict(ADDON)
    if how == "setting":
        settings["REDIS_URL"] = "redis://127.0.0.1:1/0"
    else:
        monkeypatch.setenv(ENV_VAR, "redis://127.0.0.1:1/0")
    crawler = get_crawler(DemoSpider, settings)
    assert crawler.settings["SCHEDULER"] == REDIS_SCHEDULER
    BackoffRetryMiddleware.from_crawler(crawler)  # the check validates the scheduler really built


def test_a_scheduler_set_by_hand_wins_and_is_checked() -> None:
    crawler = get_crawler(DemoSpider, {**ADDON, "SCHEDULER": "scrapy.core.scheduler.Scheduler"})
    assert crawler.settings["SCHEDULER"] == "scrapy.core.scheduler.Scheduler"
    with pytest.raises(InvalidSetting, match="SCHEDULER"):
        BackoffRetryMiddleware.from_crawler(crawler)


def test_the_in_memory_scheduler_refuses_a_crawl_that_should_be_distributed() -> None:
    crawler = get_crawler(DemoSpider, {"SCHEDULER": LOCAL_SCHEDULER, "REDIS_URL": "redis://127.0.0.1:1/0"})
    with pytest.raises(InvalidSetting, match="SCHEDULER=.*REDIS_URL is set"):
        DelayingScheduler.from_crawler(crawler)


def test_the_codec_stores_a_request_as_scrapy_redis_does_and_restores_its_callback() -> None:
    spider = DemoSpider()
    codec = Codec(spider)
    request = Request("http://a.test/p", callback=spider.parse_page, priority=3, meta={"x": 1})
    back = codec.decode(codec.encode(request))
    assert (back.url, back.priority, back.meta, back.callback) == (request.url, 3, {"x": 1}, spider.parse_page)
