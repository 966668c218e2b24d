"""The project's downloader keeps a slot's concurrency limit, which Scrapy 2.19's does not (see
scraper/downloader.py): measured by the site, as the most requests it served at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from localsite.process import LocalSite
from tests.helpers import run_crawl

FIXED = ["-s", "ADAPTIVE_CONCURRENCY_ENABLED=False", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2"]


@pytest.mark.parametrize("downloader,holds", [("scraper.downloader.Downloader", True),
                                              ("scrapy.core.downloader.Downloader", False)])
def test_a_slots_concurrency_limit_holds(tmp_path: Path, downloader: str, holds: bool) -> None:
    with LocalSite(books=60, seed=3, latency_ms=30) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", *FIXED,
                           "-s", f"DOWNLOADER={downloader}")
        most = site.stats()["max_in_flight"]
    assert result.returncode == 0, result.log[-3000:]
    # Scrapy's: a burst of queued requests all start at once (if this starts failing, Scrapy fixed
    # it and scraper/downloader.py can go)
    assert (most <= 2) == holds, most
