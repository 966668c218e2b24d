"""The close-time monitor suite on a real Crawler's stats (no reactor): what each check holds the
crawl to, and how a failure reaches the stats the exit status reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import scrapy
from scrapy.utils.test import get_crawler

from scraper.config import InvalidSetting
from scraper.extensions.monitoring import Monitoring
from scraper.outcome import MONITORS_FAILED, Thresholds, judge


@dataclass
class Book:
    title: str
    description: str
    series: str | None = None


def closed(settings: dict[str, Any] | None = None, stats: dict[str, Any] | None = None,
           items: list[Any] = ()) -> dict[str, Any]:
    """Run the suite as a crawl that scraped ``items`` and ended with ``stats``; return the stats."""
    crawler = get_crawler(scrapy.Spider, {"SPIDERMON_ENABLED": True, **(settings or {})})
    crawler.spider = scrapy.Spider(name="t")
    crawler.stats.open_spider()
    ext = Monitoring.from_crawler(crawler)
    for item in items:
        ext.item_scraped(item)
    base = {"start_time": 0, "finish_reason": "finished", "response_received_count": 100,
            "item_scraped_count": len(items)}
    for key, value in {**base, **(stats or {})}.items():
        crawler.stats.set_value(key, value)
    ext.spider_closed()
    return crawler.stats.get_stats()


def books(n: int, *, described: int, series: int = 0) -> list[Book]:
    return [Book(f"t{i}", "d" if i < described else "", "s" if i < series else None) for i in range(n)]


def test_a_good_crawl_passes_every_check() -> None:
    stats = closed(stats={"site/announced_items": 100}, items=books(100, described=97))
    assert stats["monitors/failed"] == 0 and stats["monitors/checks"] == 6
    assert judge(stats, "finished", Thresholds()).code == 0


def test_field_coverage_counts_empty_strings_and_none_as_missing_and_publishes_spidermons_keys() -> None:
    stats = closed(items=books(10, described=7, series=2))
    assert stats["spidermon_field_coverage/Book/title"] == 1.0
    assert stats["spidermon_field_coverage/Book/description"] == 0.7
    assert stats["spidermon_field_coverage/Book/series"] == 0.2
    assert stats["spidermon_item_scraped_count/Book/description"] == 7
    assert stats["monitors/failed"] == 1  # description, required, is below MONITOR_MIN_FIELD_COVERAGE
    assert "Field coverage" in stats["monitors/failures"]
    assert judge(stats, "finished", Thresholds()).code == MONITORS_FAILED


def test_optional_fields_are_checked_only_when_a_rule_names_them() -> None:
    assert closed(items=books(10, described=10, series=2))["monitors/failed"] == 0
    stats = closed({"MONITOR_FIELD_COVERAGE": {"Book/series": 0.5}}, items=books(10, described=10, series=2))
    assert stats["monitors/failed"] == 1
    relaxed = closed({"MONITOR_FIELD_COVERAGE": {"description": 0.5}}, items=books(10, described=7))
    assert relaxed["monitors/failed"] == 0


def test_an_item_type_can_expect_less_of_a_field_it_leaves_empty_on_purpose() -> None:
    @dataclass
    class Quote:
        text: str
        tags: list[str]
        field_coverage: ClassVar[dict[str, float]] = {"tags": 0.5}

    passed = closed(items=[Quote("q", ["a"] if i < 6 else []) for i in range(10)])
    assert passed["monitors/failed"] == 0
    failed = closed(items=[Quote("q", ["a"] if i < 4 else []) for i in range(10)])
    assert "Quote/tags 40.0% < 50%" in failed["monitors/failures"]


def test_dict_items_require_every_field_they_ever_carried() -> None:
    items = [{"a": 1, "b": 2}] * 9 + [{"a": 1}]
    stats = closed({"MONITOR_MIN_FIELD_COVERAGE": 0.95}, items=items)
    assert stats["spidermon_field_coverage/dict/b"] == 0.9 and stats["monitors/failed"] == 1


def test_fewer_items_than_the_site_announced_fails_unless_a_worker_holds_a_share() -> None:
    short = {"site/announced_items": 1000}
    stats = closed(stats=short, items=books(980, described=980))
    assert stats["monitors/failed"] == 1 and "announced" in stats["monitors/failures"]
    dead_lettered = closed(stats={**short, "deadletter/count": 20}, items=books(980, described=980))
    assert "announced" not in dead_lettered.get("monitors/failures", "")  # dead letters are judged apart
    assert closed({"MONITOR_MIN_ANNOUNCED_SHARE": 0.9}, stats=short,
                  items=books(980, described=980))["monitors/failed"] == 0
    assert closed({"REDIS_URL": "redis://127.0.0.1:1"}, stats=short,
                  items=books(500, described=500))["monitors/failed"] == 0


@pytest.mark.parametrize("stat,setting", [
    ("log_count/ERROR", "MONITOR_MAX_ERROR_SHARE"),
    ("pages/malformed", "MONITOR_MAX_MALFORMED_SHARE"),
    ("deadletter/count", "CRAWL_MAX_DEADLETTER_SHARE"),
])
def test_error_shares_above_their_threshold_fail(stat: str, setting: str) -> None:
    items = books(10, described=10)
    assert closed(stats={stat: 1}, items=items)["monitors/failed"] == 0  # 1% of 100 pages
    failed = closed(stats={stat: 5}, items=items)
    assert failed["monitors/failed"] == 1 and setting in failed["monitors/failures"]
    assert closed({setting: 0.1}, stats={stat: 5}, items=items)["monitors/failed"] == 0


def test_a_failed_check_is_one_error_line_with_its_reason_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        closed(stats={"finish_reason": "shutdown"}, items=books(10, described=10))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "shutdown" in errors[0], errors
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("settings,named", [
    ({"MONITOR_MIN_FIELD_COVERAGE": 2}, "MONITOR_MIN_FIELD_COVERAGE"),
    ({"MONITOR_FIELD_COVERAGE": {"title": "most"}}, "MONITOR_FIELD_COVERAGE"),
    ({"SPIDERMON_SPIDER_CLOSE_MONITORS": ["no.such.Suite"]}, "SPIDERMON_SPIDER_CLOSE_MONITORS"),
    ({"SPIDERMON_SPIDER_CLOSE_MONITORS": ["scraper.monitors.FieldCoverageMonitor"]},
     "SPIDERMON_SPIDER_CLOSE_MONITORS"),
    ({"MONITOR_ACTIONS": ["no.such.Action"]}, "MONITOR_ACTIONS"),
])
def test_bad_settings_fail_at_start_naming_the_setting(settings: dict[str, Any], named: str) -> None:
    crawler = get_crawler(scrapy.Spider, {"SPIDERMON_ENABLED": True, **settings})
    with pytest.raises(InvalidSetting, match=named):
        Monitoring.from_crawler(crawler)
