"""The progress line and the end-of-crawl summary, in a real crawl's log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from logparser import parse

from localsite.process import LocalSite
from scraper.extensions.progress import duration
from tests.helpers import TOLERATE_BAD_PAGES, run_crawl

LINE = re.compile(r"Crawled (\d+) pages \(at \d+ pages/min\), scraped (\d+) items \(at \d+ items/min\); "
                  r"(?:\d+% of 60 announced items(?:, ETA \d+s)?; )?\d+ in flight; \d+ retries waiting; "
                  r"\d+ paced starts waiting; 429s \d+% of responses; slots 127\.0\.0\.1 \d+/\d+")


def test_progress_line_and_summary(tmp_path: Path) -> None:
    with LocalSite(books=60, seed=11, latency_ms=30, malformed_rate=0.1) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", "LOGSTATS_INTERVAL=0.3", *TOLERATE_BAD_PAGES)
    assert result.returncode == 0, result.log[-3000:]
    lines = LINE.findall(result.log)
    assert lines, result.log[-3000:]
    assert "[scrapy.extensions.logstats]" not in result.log  # replaced, not doubled
    pages, items = map(int, lines[-1])
    assert pages >= items
    summary = re.search(r"Crawl finished: (\d+) items written, 0 dropped, (\d+) dead-lettered; (\d+) pages, "
                        r"(\d+) malformed; data: (\S+)", result.log)
    assert summary is not None, result.log[-3000:]
    written, _, _, malformed, where = summary.groups()
    assert int(written) + int(malformed) == 60 and int(malformed) > 0
    assert where == str(tmp_path / "out")


def test_429_share_is_a_share_and_retries_are_told_from_paced_starts(tmp_path: Path) -> None:
    """Half the product pages answer 429 + Retry-After twice: the share counts every response, retried
    ones too (it once divided by response_received_count, which misses them, and read 150%)."""
    with LocalSite(books=60, seed=12, fault_rate=0.5, fault_kinds="429", fault_times=2,
                   fault_match=r"^catalogue/[^/]+_\d+/index\.html$") as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", "LOGSTATS_INTERVAL=0.3", "-s", "CRAWL_MAX_DEADLETTER_SHARE=0.5")
    assert result.returncode == 0, result.log[-3000:]
    shares = [int(share) for share in re.findall(r"429s (\d+)% of responses", result.log)]
    assert shares and max(shares) <= 100 and max(shares) > 0
    waiting = re.findall(r"(\d+) retries waiting; (\d+) paced starts waiting", result.log)
    assert any(int(retries) > 0 for retries, _ in waiting)


def test_the_progress_line_shows_the_share_of_announced_items_and_an_eta(tmp_path: Path) -> None:
    with LocalSite(books=300, seed=11, rate_limit=100) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", "-s", "LOGSTATS_INTERVAL=0.5")
    assert result.returncode == 0, result.log[-3000:]
    shares = [int(share) for share, _ in re.findall(r"; (\d+)% of 300 announced items(, ETA \d+s)?;", result.log)]
    assert len(shares) >= 3 and shares == sorted(shares) and 0 < shares[-1] <= 100, result.log[-3000:]
    assert re.search(r"\d+% of 300 announced items, ETA \d+s;", result.log)


@pytest.mark.parametrize("seconds,text", [(0.4, "0s"), (45, "45s"), (185, "3m05s"), (7380, "2h03m")])
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_logparser_reads_a_crawl_live_as_scrapydweb_shows_it(tmp_path: Path) -> None:
    """logparser (what ScrapydWeb runs beside Scrapyd) finds the progress line's pages and items over time,
    the final stats and the finish reason in our log."""
    with LocalSite(books=200, seed=11, rate_limit=100) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", "-s", "LOGSTATS_INTERVAL=0.3")
    assert result.returncode == 0, result.log[-3000:]
    parsed = parse(result.log)
    series = parsed["datas"]  # [time, pages, pages/min, items, items/min] per progress line
    assert len(series) >= 3 and [row[1] for row in series] == sorted(row[1] for row in series)
    assert series[-1][3] > 0
    assert parsed["finish_reason"] == "finished"
    assert parsed["crawler_stats"]["item_scraped_count"] == 200
    assert parsed["log_categories"]["error_logs"]["count"] == 0
