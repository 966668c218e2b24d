"""The exit status a crawl's final stats and close reason earn (scraper.outcome): pure, no crawl."""

from __future__ import annotations

import pytest
from scrapy.settings import Settings

from scraper import outcome
from scraper.config import InvalidSetting
from scraper.outcome import Thresholds, judge

CLEAN = {"item_scraped_count": 1000, "response_received_count": 1051}


def test_a_finished_crawl_that_lost_nothing_is_ok_and_complete() -> None:
    result = judge(CLEAN, "finished", Thresholds())
    assert (result.code, result.cause, result.complete) == (outcome.OK, "", True)


def test_rows_that_could_not_be_written_fail_it_whatever_else_happened() -> None:
    result = judge({**CLEAN, "parquet/lost_rows": 50}, "shutdown", Thresholds())
    assert result.code == outcome.LOST and "50 item(s)" in result.cause and not result.complete
    assert judge({**CLEAN, "outcome/item_errors": 1}, "finished", Thresholds()).code == outcome.LOST


@pytest.mark.parametrize("reason", ["shutdown", "closespider_itemcount", "parquet_schema_error", "cancelled"])
def test_any_close_reason_but_finished_is_a_stop_before_the_end(reason: str) -> None:
    result = judge(CLEAN, reason, Thresholds())
    assert result.code == outcome.STOPPED and reason in result.cause and not result.complete


def test_nothing_crawled_says_why() -> None:
    refused = {"downloader/exception_type_count/twisted.internet.error.ConnectionRefusedError": 3}
    result = judge(refused, "finished", Thresholds())
    assert result.code == outcome.TOO_FEW_ITEMS and "3x ConnectionRefusedError" in result.cause
    forbidden = judge({"robotstxt/forbidden": 1}, "finished", Thresholds())
    assert "robots.txt forbade 1 request(s)" in forbidden.cause
    assert judge({}, "finished", Thresholds(min_items=0)).code == outcome.OK  # a crawl allowed to find nothing


def test_dead_letters_beyond_the_share_fail_it_and_any_keep_it_incomplete() -> None:
    many = judge({**CLEAN, "deadletter/count": 170}, "finished", Thresholds())
    assert many.code == outcome.DEAD_LETTERS and "170 request(s)" in many.cause
    few = judge({**CLEAN, "deadletter/count": 3}, "finished", Thresholds())
    assert few.code == outcome.OK and not few.complete  # within the share, but not everything is there
    assert judge({**CLEAN, "deadletter/count": 170}, "finished", Thresholds(max_deadletter_share=0.5)).code == 0


def test_thresholds_are_settings_checked_at_start_up() -> None:
    settings = Settings({"CRAWL_MIN_ITEMS": 10, "CRAWL_MAX_DEADLETTER_SHARE": 0.2})
    assert Thresholds.from_settings(settings) == Thresholds(10, 0.2)
    with pytest.raises(InvalidSetting, match="CRAWL_MAX_DEADLETTER_SHARE"):
        Thresholds.from_settings(Settings({"CRAWL_MAX_DEADLETTER_SHARE": 2}))
