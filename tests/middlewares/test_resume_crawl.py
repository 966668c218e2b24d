"""Pause and resume with ``JOBDIR``, end to end: a rate-limited crawl stopped by Ctrl-C, or killed with
``kill -9``, then the same command again, ends with every book exactly once in one dataset, and only
the run that completes the crawl marks it ``_SUCCESS``."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from localsite.process import LocalSite
from scraper import outcome
from tests.helpers import run_crawl, start_crawl, stat, wait_for


def upcs(out: Path) -> list[str]:
    return ds.dataset(out, format="parquet").to_table(columns=["upc"]).column("upc").to_pylist()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill -9"])
def test_a_stopped_crawl_resumed_with_the_same_command_stores_every_book_once(
        tmp_path: Path, stop: signal.Signals) -> None:
    out, log = tmp_path / "out", tmp_path / "first.log"
    with LocalSite(books=1000, seed=4, rate_limit=60) as site:
        args = ["-a", f"start_url={site.url}", "-s", f"JOBDIR={tmp_path / 'job'}",
                "-s", "PARQUET_ROLLOVER_SECONDS=1", "-s", "LOGSTATS_INTERVAL=0.5"]
        first = start_crawl("books", out, log, *args)
        wait_for(lambda: site.stats()["requests"] > 250, timeout=120)
        os.killpg(first.pid, stop)  # to the group, as a terminal's Ctrl-C (and pool workers die with kill -9)
        code = first.wait(timeout=120)
        assert not (out / "_SUCCESS").exists()
        if stop == signal.SIGINT:
            assert code == outcome.STOPPED, log.read_text()[-3000:]
            text = log.read_text()
            assert "Abandoned" not in text and stat(out, "scheduler/delayed_persisted") > 0, text[-3000:]
        stored_before = len(upcs(out))
        assert 0 < stored_before < 1000

        second = run_crawl("books", out, *args)
    assert second.returncode == 0, second.log[-3000:]
    books = upcs(out)
    assert len(books) == 1000 and len(set(books)) == 1000  # every book, once, in the one dataset
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 1000 and (out / "_SUCCESS").exists()
    if stop == signal.SIGKILL:
        assert "the last run was killed" in second.log
        assert stat(second, "resume/already_stored") >= stored_before - 50  # stored rows not refetched
    else:
        assert "Resuming crawl" in second.log
