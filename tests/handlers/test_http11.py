"""The keep-alive pool is sized to what a host's slot can reach (unit); the crawl that proves it end
to end is ``test_unthrottled_crawl_grows_from_slow_start`` (tests/middlewares/test_adaptive.py)."""

from __future__ import annotations

import pytest
from scrapy.settings import Settings

from scraper.config import InvalidSetting
from scraper.handlers.http11 import keep_alive_per_host


@pytest.mark.parametrize("settings,expected", [
    ({}, 16),  # adaptive on by default: up to CONCURRENT_REQUESTS (16) in flight to one host
    ({"CONCURRENT_REQUESTS": 64}, 32),  # ... or ADAPTIVE_MAX_CONCURRENCY (32), whichever is lower
    ({"ADAPTIVE_MAX_CONCURRENCY": 4}, 8),  # never below Scrapy's own sizing
    ({"ADAPTIVE_CONCURRENCY_ENABLED": False}, 8),  # Scrapy's: CONCURRENT_REQUESTS_PER_DOMAIN
    ({"ADAPTIVE_CONCURRENCY_ENABLED": False, "CONCURRENT_REQUESTS_PER_DOMAIN": 3}, 3),
])
def test_pool_holds_what_one_host_can_have_in_flight(settings: dict, expected: int) -> None:
    assert keep_alive_per_host(Settings(settings)) == expected


def test_a_bad_limit_fails_naming_the_setting() -> None:
    with pytest.raises(InvalidSetting, match="ADAPTIVE_MAX_CONCURRENCY"):
        keep_alive_per_host(Settings({"ADAPTIVE_MAX_CONCURRENCY": "many"}))
