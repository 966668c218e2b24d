"""``scrapy redrive DATASET``, end to end: a crawl that dead-lettered pages while the site failed is
completed, once the site recovers, into the same dataset, every book exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

from localsite.process import LocalSite
from scraper import outcome
from tests.helpers import ROOT, read_stats, run_crawl, stat

BOOKS = 200


def redrive(dataset: Path, stats: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``scrapy redrive DATASET`` (its final stats to ``stats``, if given)."""
    argv = [sys.executable, "-m", "scrapy", "redrive", str(dataset)]
    if stats is not None:
        argv += ["-s", f"STATS_FILE={stats}"]
    return subprocess.run(argv, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)


def upcs(out: Path) -> list[str]:
    return ds.dataset(out, format="parquet").to_table(columns=["upc"]).column("upc").to_pylist()


def test_dead_letters_are_recrawled_into_the_same_dataset_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # a tenth of the paths (listing pages too: their products were never seen) fail for a while
    with LocalSite(books=BOOKS, seed=8, fault_rate=0.1, fault_kinds=["500"], fault_times=99) as site:
        first = run_crawl("books", out, "-a", f"start_url={site.url}", "-s", "RETRY_TIMES=1",
                          "-s", "RETRY_FOR_SECONDS=0.2")
        assert first.returncode == outcome.DEAD_LETTERS, first.log[-3000:]
        missing = BOOKS - len(upcs(out))
        assert missing > 0 and not (out / "_SUCCESS").exists()
        site.control(fault_rate=0.0)  # the site recovered
        second = redrive(out, tmp_path / "redrive.stats.json")
        log = second.stdout + second.stderr
        again = redrive(out)  # nothing left to re-drive: refused, nothing changes
    assert second.returncode == 0, log[-3000:]
    rows = upcs(out)
    assert len(rows) == BOOKS and len(set(rows)) == BOOKS  # every book, once
    assert stat(read_stats(tmp_path / "redrive.stats.json"), "redrive/requests") == stat(first, "deadletter/count")
    assert (out / "_SUCCESS").exists()
    assert not list((out / "_deadletter").glob("*.jsonl")) and list((out / "_deadletter" / "redriven").glob("*.jsonl"))
    assert again.returncode == outcome.NOT_STARTED and "Invalid setting REDRIVE_FROM" in again.stdout + again.stderr
    assert len(upcs(out)) == BOOKS


def test_a_redrive_stopped_half_way_keeps_its_letters_for_the_next(tmp_path: Path) -> None:
    from scrapy.utils.test import get_crawler

    from scraper.middlewares.redrive import RedriveMiddleware

    letters = tmp_path / "_deadletter"
    letters.mkdir()
    (letters / "deadletter-a.jsonl").write_text('{"kind": "request", "url": "http://x/1", "callback": "parse"}\n')
    middleware = RedriveMiddleware.from_crawler(get_crawler(settings_dict={"REDRIVE_FROM": str(tmp_path)}))
    middleware.spider_closed("shutdown")
    assert (letters / "deadletter-a.jsonl").exists()
    middleware.spider_closed("finished")
    assert not (letters / "deadletter-a.jsonl").exists() and (letters / "redriven" / "deadletter-a.jsonl").exists()
