"""``scrapy crawl``'s exit status, end to end (real processes, real exit codes): a crawl that lost
data, stopped early or could not run never exits 0, and says why in its last log line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from localsite.process import LocalSite
from scraper import outcome
from tests.helpers import run_crawl, start_crawl, wait_for

NO_TRACEBACKS = ("Traceback", "never retrieved")


@pytest.fixture(scope="module")
def small_site() -> Iterator[LocalSite]:
    with LocalSite(books=60, seed=3) as site:
        yield site


def last_line(log: str) -> str:
    return log.strip().splitlines()[-1]


def manifest(out: Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())


def test_a_clean_crawl_exits_0_and_marks_its_dataset_complete(small_site: LocalSite, tmp_path: Path) -> None:
    result = run_crawl("books", tmp_path / "out", "-a", f"start_url={small_site.url}")
    assert result.returncode == 0, result.log[-3000:]
    assert "Exit status 0" in last_line(result.log)
    assert (tmp_path / "out" / "_SUCCESS").exists()
    written = manifest(tmp_path / "out")
    assert written["complete"] and written["exit_code"] == 0 and written["rows"] == 60
    assert (written["rows_lost"], written["dead_lettered"], written["malformed"]) == (0, 0, 0)


@pytest.mark.parametrize("args,named", [
    (["-s", "PARQUET_URI=/proc/nope"], "Invalid setting PARQUET_URI='/proc/nope'"),
    (["-s", "CONCURRENT_REQUESTS=0"], "Invalid setting CONCURRENT_REQUESTS='0'"),
    (["-s", "CONCURRENT_REQUESTS=-1"], "Invalid setting CONCURRENT_REQUESTS='-1'"),
    (["-s", "DOWNLOAD_TIMEOUT=0"], "Invalid setting DOWNLOAD_TIMEOUT='0'"),
    (["-s", "PARQUET_COMPRESSION=rar"], "Invalid setting PARQUET_COMPRESSION='rar'"),
    (["-a", "start_url=ftp://x/"], "Invalid spider argument start_url='ftp://x/'"),
    (["-a", "start_url=index.html"], "Invalid spider argument start_url='index.html'"),
    (["-s", "ROTATING_PROXY_LIST=http://u:p@127.0.0.1:1"], "Invalid setting ROTATING_PROXY_LIST='…': expected it "
                                                           "unset (a scrapy-rotating-proxies setting; this project "
                                                           "replaces scrapy-rotating-proxies: use PROXY_LIST)"),
    (["-s", "REDIS_HOST=127.0.0.1"], "use REDIS_URL"),
    (["-s", "MONITOR_ACTIONS=tests.extensions.alert_action.RecordAlert"], "Invalid setting MONITOR_ACTIONS="),
])
def test_bad_input_is_one_line_naming_it_and_exit_1_before_any_request(
        small_site: LocalSite, tmp_path: Path, args: list[str], named: str) -> None:
    small_site.reset()
    result = run_crawl("books", tmp_path / "out", "-a", f"start_url={small_site.url}", *args)
    assert result.returncode == outcome.NOT_STARTED, result.log[-3000:]
    errors = [line for line in result.log.splitlines() if named in line]
    assert len(errors) == 1 and " ERROR: " in errors[0], result.log[-3000:]
    assert not any(marker in result.log for marker in NO_TRACEBACKS), result.log[-3000:]
    assert "Exit status 1" in last_line(result.log)
    assert small_site.stats()["requests"] == 0


def test_an_unreachable_start_exits_6_saying_why(tmp_path: Path) -> None:
    result = run_crawl("books", tmp_path / "out", "-a", "start_url=http://127.0.0.1:1/",
                       "-s", "RETRY_FOR_SECONDS=1")
    assert result.returncode == outcome.TOO_FEW_ITEMS, result.log[-3000:]
    assert "ConnectionRefusedError" in last_line(result.log)
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_start_url_forbidden_by_robots_txt_is_a_warning_and_exit_6(tmp_path: Path) -> None:
    with LocalSite(books=20, seed=3, robots_disallow="/") as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}")
    assert result.returncode == outcome.TOO_FEW_ITEMS, result.log[-3000:]
    assert f"WARNING: robots.txt forbids the start URL {site.url}" in result.log
    assert "robots.txt forbade 1 request(s)" in last_line(result.log)


def test_dead_letters_beyond_the_share_exit_5_and_leave_the_dataset_incomplete(tmp_path: Path) -> None:
    """A fifth of the product pages fail for good: their rows are not there, and the run says so."""
    out = tmp_path / "out"
    with LocalSite(books=60, seed=3, fault_rate=0.2, fault_kinds=["500"], fault_times=99,
                   fault_match=r"catalogue/(?!category/)[^/]+/index\.html$") as site:
        result = run_crawl("books", out, "-a", f"start_url={site.url}", "-s", "RETRY_FOR_SECONDS=0.5",
                           "-s", "RETRY_TIMES=1")
    assert result.returncode == outcome.DEAD_LETTERS, result.log[-3000:]
    assert "dead-lettered" in last_line(result.log)
    written = manifest(out)
    assert not written["complete"] and not (out / "_SUCCESS").exists()
    assert written["dead_lettered"] > 0 and written["rows"] == 60 - written["dead_lettered"]


def test_fewer_items_than_the_site_announced_fail_a_monitor_exit_7_and_fire_the_alert(tmp_path: Path) -> None:
    """robots.txt forbids 11 of the 60 product pages: nothing fails, nothing is dead-lettered, and the
    crawl still stored fewer books than the catalogue's "60 results". The monitor suite says so."""
    out, alert = tmp_path / "out", tmp_path / "alert.json"
    with LocalSite(books=60, seed=3, robots_disallow="/catalogue/a-year") as site:
        result = run_crawl("books", out, "-a", f"start_url={site.url}",
                           "-s", "MONITOR_ACTIONS=tests.extensions.alert_action.RecordAlert",
                           "-s", f"TEST_ALERT_FILE={alert}")
    assert result.returncode == outcome.MONITORS_FAILED, result.log[-3000:]
    assert manifest(out)["rows"] == 49
    assert "49 item(s) and 0 dead letter(s) for 60 announced" in last_line(result.log)
    assert json.loads(alert.read_text()) == {
        "spider": "books",
        "failed": ["Items against the site's announced count/Should store the items the site announced"]}
    assert not (out / "_SUCCESS").exists() and manifest(out)["exit_code"] == outcome.MONITORS_FAILED
    assert not any(marker in result.log for marker in NO_TRACEBACKS), result.log[-3000:]


def test_a_field_below_its_coverage_rule_exits_7_and_a_clean_run_fires_no_alert(
        small_site: LocalSite, tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    args = ["-a", f"start_url={small_site.url}", "-s", "MONITOR_ACTIONS=tests.extensions.alert_action.RecordAlert",
            "-s", f"TEST_ALERT_FILE={alert}"]
    result = run_crawl("books", tmp_path / "out", *args, "-s", 'MONITOR_FIELD_COVERAGE={"series": 0.9}')
    assert result.returncode == outcome.MONITORS_FAILED, result.log[-3000:]
    assert "series" in last_line(result.log) and "MONITOR_FIELD_COVERAGE" in last_line(result.log)
    assert alert.exists()
    alert.unlink()
    clean = run_crawl("books", tmp_path / "clean", *args)
    assert clean.returncode == 0 and "Monitors: 6 check(s) passed or skipped" in clean.log, clean.log[-3000:]
    assert not alert.exists()


def test_a_crawl_stopped_by_a_signal_exits_3(tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "crawl.log"
    with LocalSite(books=400, seed=3, latency_ms=30) as site:
        proc = start_crawl("books", out, log, "-a", f"start_url={site.url}", "-s", "LOGSTATS_INTERVAL=0.5")
        wait_for(lambda: "scraped" in log.read_text() and " 0 items" not in log.read_text().splitlines()[-1],
                 timeout=60)
        proc.send_signal(signal.SIGTERM)  # what Scrapyd's cancel.json does
        assert proc.wait(timeout=120) == outcome.STOPPED, log.read_text()[-3000:]
    text = log.read_text()
    assert "closed before the end (reason: shutdown)" in last_line(text)
    assert not (out / "_SUCCESS").exists() and not manifest(out)["complete"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs: the disk fills mid-crawl."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode:
        message = f"cannot mount a tmpfs here: {made.stderr.strip()}"
        if os.environ.get("CI"):  # CI runs as root: a skipped disk-full test there would prove nothing
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_loses_rows_exits_4_and_publishes_only_readable_parts(
        books_site: LocalSite, small_disk: Path, tmp_path: Path) -> None:
    out = small_disk / "out"
    result = run_crawl("books", out, "-a", f"start_url={books_site.url}", "-s", "PARQUET_ROW_GROUP_SIZE=50",
                       "-s", f"DEADLETTER_URI={tmp_path / 'dead'}", "-s", f"RAW_ARCHIVE_URI={tmp_path / 'raw'}")
    assert result.returncode == outcome.LOST, result.log[-3000:]
    assert "could not be written" in last_line(result.log)
    assert not (out / "_SUCCESS").exists()
    visible = [p for p in out.iterdir() if p.name.startswith("part-")]
    assert sum(ds.dataset(p, format="parquet").count_rows() for p in visible) < 1000  # every one readable
    assert not [p for p in out.iterdir() if p.name.endswith(".inprogress")]  # the failed part was removed


def test_dead_letters_that_cannot_be_written_are_lost_data(tmp_path: Path) -> None:
    with LocalSite(books=60, seed=3, fault_rate=0.2, fault_kinds=["500"], fault_times=99,
                   fault_match=r"catalogue/(?!category/)[^/]+/index\.html$") as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}", "-s", "RETRY_FOR_SECONDS=0.5",
                           "-s", "RETRY_TIMES=1", "-s", "DEADLETTER_URI=/proc/no-dead-letters-here")
    assert result.returncode == outcome.LOST, result.log[-3000:]
    assert "ERROR: Could not write a dead letter to /proc/no-dead-letters-here" in result.log
    assert "could not be written" in last_line(result.log)
