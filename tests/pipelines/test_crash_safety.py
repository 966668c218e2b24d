"""A crawl stopped by kill -9, Ctrl-C (to the whole process group) or SIGTERM loses no accepted item
and leaves only complete, readable Parquet parts."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from localsite.process import LocalSite
from scraper import outcome
from tests.helpers import run_crawl, start_crawl, stat, wait_for

SLOW = ["-s", "PARQUET_ROW_GROUP_SIZE=20", "-s", "PARQUET_PART_MAX_ROWS=40", "-s", "CONCURRENT_REQUESTS=4",
        "-s", "NORMALIZE_BATCH_SIZE=10"]


@pytest.fixture(scope="module")
def slow_site():
    with LocalSite(books=1000, seed=2, latency_ms=40) as site:
        yield site


def parts(directory: Path) -> list[Path]:
    return sorted(directory.glob("part-*.parquet")) if directory.exists() else []


def test_kill_9_leaves_only_complete_readable_parts(slow_site: LocalSite, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_crawl("books", out, tmp_path / "log", "-a", f"start_url={slow_site.url}", *SLOW)
    try:
        wait_for(lambda: len(parts(out)) >= 2, timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the crawler and its pool workers, mid-write
        proc.wait()
    visible = parts(out)
    for part in visible:
        assert pq.read_table(part).num_rows == 40  # every visible part is whole
    assert ds.dataset(out, format="parquet").count_rows() == 40 * len(visible)
    assert not (out / "_manifest.json").exists() and not (out / "_SUCCESS").exists()


@pytest.mark.parametrize("how", ["ctrl-c to the process group", "sigterm to the crawler"])
def test_graceful_stop_writes_every_accepted_item(slow_site: LocalSite, tmp_path: Path, how: str) -> None:
    out, log = tmp_path / "out", tmp_path / "log"
    proc = start_crawl("books", out, log, "-a", f"start_url={slow_site.url}", *SLOW)
    try:
        wait_for(lambda: len(parts(out)) >= 1, timeout=120)
        if how.startswith("ctrl-c"):
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: workers get it too
        else:
            proc.send_signal(signal.SIGTERM)  # what Scrapyd's cancel.json does
        proc.wait(timeout=90)
    except (subprocess.TimeoutExpired, TimeoutError):
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    text = log.read_text()
    assert proc.returncode == outcome.STOPPED, text[-3000:]  # stopped before the end: never 0
    assert "KeyboardInterrupt" not in text and "WorkerCrashed" not in text
    assert "Normalisation worker" not in text  # no worker died or was replaced
    accepted = stat(out, "normalize/items")
    rows = ds.dataset(out, format="parquet").count_rows()
    assert 0 < accepted < 1000
    assert rows + stat(out, "deadletter/count") == accepted == stat(out, "item_scraped_count")
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] is False and manifest["finish_reason"] == "shutdown"
    assert manifest["rows"] == rows


def test_kill_9_in_a_rate_limited_crawl_loses_at_most_the_last_rollover(tmp_path: Path) -> None:
    """Default row groups (10,000 rows: without a time rollover nothing reaches disk before the close),
    a rate-limited site, ``PARQUET_ROLLOVER_SECONDS=2``: a kill -9 keeps at least 90% of the books
    fetched more than one rollover before it, in readable parts."""
    out = tmp_path / "out"
    product = re.compile(r"^catalogue/[^/]+_\d+/index\.html$")
    with LocalSite(books=1000, seed=2, rate_limit=40) as site:

        def fetched() -> int:
            return sum(1 for path in site.stats(paths=True)["paths"] if product.match(path))

        proc = start_crawl("books", out, tmp_path / "log", "-a", f"start_url={site.url}",
                           "-s", "PARQUET_ROLLOVER_SECONDS=2")
        try:
            wait_for(lambda: fetched() >= 150, timeout=120)
            before = fetched()
            time.sleep(2 + 1.5)  # one rollover, its check interval and the item's trip through the pool
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rows = sum(pq.read_table(part).num_rows for part in parts(out))  # every visible part reads whole
    assert rows >= 0.9 * before, (rows, before)
    assert not (out / "_SUCCESS").exists()


def test_a_clean_close_compacts_the_parts_rollovers_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with LocalSite(books=200, seed=2, rate_limit=100) as site:
        result = run_crawl("books", out, "-a", f"start_url={site.url}", "-s", "PARQUET_ROLLOVER_SECONDS=0.2",
                           "-s", "PARQUET_COMPACT=True", "-s", "PARQUET_PART_MAX_ROWS=150")
    assert result.returncode == 0, result.log[-3000:]
    assert stat(result, "parquet/rollovers") >= 3 and stat(result, "parquet/compacted_parts") >= 2
    manifest = json.loads((out / "_manifest.json").read_text())
    assert sorted(p["path"] for p in manifest["parts"]) == [p.name for p in parts(out)]
    sizes = [p["rows"] for p in manifest["parts"]]
    assert len(sizes) < stat(result, "parquet/rollovers")
    # merged up to PARQUET_PART_MAX_ROWS: no two neighbours would have fitted in one part
    assert all(a + b > 150 for a, b in itertools.pairwise(sizes)), sizes
    upcs = ds.dataset(out, format="parquet").to_table(columns=["upc"]).column("upc").to_pylist()
    assert len(upcs) == 200 and len(set(upcs)) == 200
    assert not list(out.glob(".*"))  # nothing left hidden
