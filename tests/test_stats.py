"""STATS_FILE: the final stats as JSON, written whole at close; a bad path fails at start-up."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler

from scraper.config import InvalidSetting
from scraper.stats import JsonFileStatsCollector


class DemoSpider(Spider):
    name = "demo"


def collector(path: Path | str) -> JsonFileStatsCollector:
    return JsonFileStatsCollector(get_crawler(DemoSpider, {"STATS_FILE": str(path)}))


def test_the_final_stats_are_written_as_json(tmp_path: Path) -> None:
    stats = collector(tmp_path / "stats.json")
    stats.set_value("item_scraped_count", 3)
    stats.set_value("outcome/exit_code", 0)
    stats.close_spider(reason="finished")
    assert json.loads((tmp_path / "stats.json").read_text()) == {"item_scraped_count": 3, "outcome/exit_code": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]  # no temporary file left


def test_without_stats_file_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stats = JsonFileStatsCollector(get_crawler(DemoSpider))
    stats.set_value("x", 1)
    stats.close_spider(reason="finished")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_does_not_exist_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match="STATS_FILE"):
        collector(tmp_path / "missing" / "stats.json")


def test_a_file_that_cannot_be_written_at_close_is_an_error_line_not_a_crash(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "stats.json"
    stats = collector(target)
    target.mkdir()  # (a directory where the file should go: the rename fails)
    with caplog.at_level(logging.ERROR):
        stats.close_spider(reason="finished")
    assert "STATS_FILE" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_an_earlier_runs_file_is_removed_at_start_up(tmp_path: Path) -> None:
    """If this run cannot write its stats, no reader takes the last run's for them."""
    (tmp_path / "stats.json").write_text('{"item_scraped_count": 1000}')
    collector(tmp_path / "stats.json")
    assert not (tmp_path / "stats.json").exists()
