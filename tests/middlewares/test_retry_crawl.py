"""Retries end to end: the local site's real fault injection, real crawls in subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from localsite.faults import unit_hash
from localsite.process import LocalSite
from scraper import outcome
from tests.helpers import run_crawl, start_crawl, stat, wait_for

FAST = ["-s", "RETRY_BACKOFF_BASE=0.1", "-s", "RETRY_BACKOFF_MAX=1"]
PRODUCTS = r"^catalogue/[^/]+_\d+/index\.html$"
BOOKS = 40


def faulty(site: LocalSite, rate: float) -> set[str]:
    return {b.path for b in site.catalog if unit_hash(site.seed, "fault", b.path) < rate}


@pytest.mark.parametrize("kind,times", [("503", 1), ("429", 2), ("429-date", 2), ("drop", 1), ("500", 2)])
def test_each_fault_kind_every_book_exactly_once(tmp_path: Path, kind: str, times: int) -> None:
    with LocalSite(books=BOOKS, seed=21, fault_rate=0.5, fault_kinds=kind, fault_times=times,
                   fault_match=PRODUCTS, fault_retry_after=1) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", *FAST)
        paths = site.stats(paths=True)["paths"]
        bad = faulty(site, 0.5)
    assert result.returncode == 0 and "Traceback" not in result.log
    rows = result.rows()
    assert len(rows) == BOOKS and len({r["url"] for r in rows}) == BOOKS
    assert bad and all(paths[p] == 1 + times for p in bad)  # failed `times`, then served once
    assert all(paths[b.path] == 1 for b in site.catalog if b.path not in bad)
    if kind == "drop":
        # Twisted's connection pool silently retries an idempotent GET once when a reused
        # keep-alive connection dies, so only some drops reach the retry middleware.
        assert 0 < stat(result, "retry/count") <= len(bad)
    else:
        assert stat(result, "retry/count") == times * len(bad)
    assert stat(result, "deadletter/count") == 0


def test_transient_faults_and_a_rate_limit_still_deliver_every_book(tmp_path: Path) -> None:
    # The token bucket answers 429 + Retry-After (the real rate-limit signal); the injected transient
    # faults are the error kinds (the 429 kinds each have their own test above).
    with LocalSite(books=1000, seed=7, fault_rate=0.2, fault_kinds="500,503,drop",
                   fault_times=2, rate_limit=60, burst=20, retry_after="date") as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", *FAST)
        statuses = site.stats()["statuses"]
    assert result.returncode == 0, result.log[-3000:]
    rows = result.rows()
    assert len(rows) == 1000 and len({r["upc"] for r in rows}) == 1000
    assert int(statuses["429"]) > 0 and stat(result, "retry/retry_after_honoured") > 0
    assert stat(result, "retry/backoff_events") < stat(result, "retry/budget/ratelimit")
    assert stat(result, "deadletter/count") == 0


def test_waiting_retries_hold_no_slot(tmp_path: Path) -> None:
    """200 requests to host A wait a 12 s backoff while host B's 210 pages flow at full speed."""
    wait = 12
    with LocalSite(books=200, seed=31, fault_rate=1.0, fault_kinds="500", fault_match=PRODUCTS) as a, \
            LocalSite(books=200, seed=32, host="127.0.0.2") as b:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={a.url} {b.url}",
                           "-s", f"RETRY_BACKOFF_BASE={wait}", "-s", "RETRY_BACKOFF_JITTER=none",
                           "-s", "CONCURRENT_REQUESTS=16")
    assert result.returncode == 0, result.log[-3000:]
    rows = result.rows()
    from_a = [r["scraped_at"] for r in rows if r["url"].startswith(a.url)]
    from_b = [r["scraped_at"] for r in rows if r["url"].startswith(b.url)]
    assert len(from_a) == 200 and len(from_b) == 200  # nothing lost, the spider waited for A
    assert stat(result, "retry/pending_max") >= 150  # far more than CONCURRENT_REQUESTS
    # Every B book was scraped before the first A retry could even be sent (12 s after A's failure):
    # the waiting retries took no downloader place from B.
    assert max(from_b) < min(from_a)
    assert (min(from_a) - max(from_b)).total_seconds() > 0


def test_faults_that_clear_within_the_time_budget_cost_no_data(tmp_path: Path) -> None:
    """RETRY_TIMES=2, and 8 paths fail 9 times in a row before recovering (a few seconds with these
    backoffs): within RETRY_FOR_SECONDS (60 s by default), they are retried until they succeed."""
    with LocalSite(books=40, seed=41, fault_rate=0.2, fault_kinds="500", fault_times=9,
                   fault_match=PRODUCTS) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", *FAST,
                           "-s", "RETRY_TIMES=2")
        paths = site.stats(paths=True)["paths"]
        bad = faulty(site, 0.2)
    assert result.returncode == 0
    assert len(result.rows()) == 40 and bad and all(paths[p] == 10 for p in bad)
    assert stat(result, "deadletter/count") == 0


def test_given_up_requests_are_dead_lettered(tmp_path: Path) -> None:
    with LocalSite(books=40, seed=41, fault_rate=0.2, fault_kinds="500", fault_times=9,
                   fault_match=PRODUCTS) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", *FAST,
                           "-s", "RETRY_TIMES=2", "-s", "RETRY_FOR_SECONDS=0")
        bad = faulty(site, 0.2)
    assert result.returncode == outcome.DEAD_LETTERS  # a fifth of the pages: beyond CRAWL_MAX_DEADLETTER_SHARE
    assert len(result.rows()) == 40 - len(bad)
    records = [json.loads(line) for f in (tmp_path / "out" / "_deadletter").glob("*.jsonl")
               for line in f.read_text().splitlines()]
    assert sorted(r["url"] for r in records) == sorted(site.url + p for p in bad)
    for record in records:
        assert (record["reason"], record["method"], record["attempts"], record["last_status"]) == \
            ("retry_exhausted", "GET", 3, 500)
        assert record["first_attempt_at"] < record["last_attempt_at"]


def test_graceful_stop_dead_letters_pending_retries(tmp_path: Path) -> None:
    with LocalSite(books=100, seed=51, fault_rate=1.0, fault_kinds="500", fault_match=PRODUCTS) as site:
        out, log = tmp_path / "out", tmp_path / "log"
        proc = start_crawl("books", out, log, "-a", f"start_url={site.url}",
                           "-s", "RETRY_BACKOFF_BASE=60", "-s", "RETRY_BACKOFF_JITTER=none")
        try:
            wait_for(lambda: int(site.stats()["statuses"].get("500", 0)) >= 100, timeout=120)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, TimeoutError):
            proc.kill()
            raise
    text = log.read_text()
    assert proc.returncode == outcome.STOPPED, text[-3000:]
    assert "Abandoned 100 delayed request(s) on close (shutdown); dead-lettered" in text
    records = [json.loads(line) for f in (out / "_deadletter").glob("*.jsonl")
               for line in f.read_text().splitlines()]
    assert len(records) == 100 and {r["reason"] for r in records} == {"delayed_abandoned"}
    assert all(r["url"].startswith(site.url + "catalogue/") for r in records)
