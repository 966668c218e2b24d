"""End to end on a real redis-server: N workers split a crawl, a killed worker loses nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import redis

from localsite.process import LocalSite
from scraper.distributed.frontier import Frontier, FrontierKeys
from scraper.parquet.dataset import DatasetWriter
from scraper.parquet.schema import arrow_schema
from tests.helpers import RedisServer, crawl_argv, read_stats, run_crawl, stat, wait_for

ROOT = Path(__file__).resolve().parents[2]
FAST_LEASES = ["-s", "REDIS_LEASE_SECONDS=4", "-s", "REDIS_CHECKPOINT_INTERVAL=1"]


@dataclass
class Row:
    n: int
    text: str


def start_worker(site: LocalSite, output: Path, log: Path, redis_url: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCRAPER_REDIS_URL": redis_url}
    argv = crawl_argv("books", output, "-a", f"start_url={site.url}", *FAST_LEASES, *extra,
                      "-s", f"STATS_FILE={worker_stats(log)}")  # (workers share the output)
    with open(log, "w") as handle:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def worker_stats(log: Path) -> Path:
    return log.with_name(f"{log.name}.stats.json")


def busy(log: Path) -> bool:
    """The worker's last progress line shows items and a non-zero rate."""
    lines = re.findall(r"scraped (\d+) items \(at (\d+) items/min\)", log.read_text())
    return bool(lines) and int(lines[-1][0]) >= 30 and int(lines[-1][1]) > 0


def upcs(output: Path) -> list[str]:
    return ds.dataset(output, format="parquet").to_table(columns=["upc"]).column("upc").to_pylist()


@pytest.fixture
def slow_site() -> LocalSite:
    """Latency makes the crawl I/O-bound, so every worker gets a share."""
    with LocalSite(books=1000, seed=7, latency_ms=40) as site:
        yield site


def test_three_workers_split_the_catalogue(slow_site: LocalSite, redis_server: str, tmp_path: Path) -> None:
    logs = [tmp_path / f"w{n}.log" for n in range(3)]
    workers = [start_worker(slow_site, tmp_path / "out", log, redis_server) for log in logs]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0]
    rows = upcs(tmp_path / "out")
    assert len(rows) == 1000 and len(set(rows)) == 1000  # every book once: no duplicate fetch or row
    texts = [log.read_text() for log in logs]
    shares = [stat(read_stats(worker_stats(log)), "item_scraped_count") for log in logs]
    assert sum(shares) == 1000 and all(share > 0 for share in shares), shares
    assert all("Traceback" not in t and "Deprecat" not in t for t in texts)
    pages = slow_site.stats()["requests"]
    assert pages <= 1000 + 50 + 1 + 3  # books + listing pages + robots.txt per worker: nothing twice
    assert redis.Redis.from_url(redis_server).keys("scraper:books:*") == []  # the last one cleared


def test_a_killed_worker_loses_nothing(slow_site: LocalSite, redis_server: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    logs = [tmp_path / f"w{n}.log" for n in range(3)]
    workers = [start_worker(slow_site, out, log, redis_server, "-s", "LOGSTATS_INTERVAL=0.5")
               for log in logs]
    victim = workers[0]
    # Kill it mid-crawl while it is busy: downloads in flight, rows in its open part.
    client = redis.Redis.from_url(redis_server)

    def victim_leases() -> int:
        owners = client.hvals("scraper:books:lease_owner")
        return sum(owner.decode().split(":")[1] == str(victim.pid) for owner in owners)

    def frozen_holding_leases() -> bool:
        """Freeze the victim and look: a checkpoint may have acked its leases since the last look."""
        if not busy(logs[0]) or victim_leases() < 3:
            return False
        os.killpg(victim.pid, signal.SIGSTOP)
        if victim_leases() >= 3:
            return True
        os.killpg(victim.pid, signal.SIGCONT)
        return False

    wait_for(frozen_holding_leases, timeout=120, interval=0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert [w.wait(timeout=300) for w in workers[1:]] == [0, 0]
    rows = upcs(out)
    assert len(set(rows)) == 1000, "books lost"
    assert len(rows) == 1000, "duplicate rows"
    # The victim's leases expired and were taken back, or its last commit was finished for it.
    taken_back = sum(stat(read_stats(worker_stats(log)), key) for log in logs[1:]
                     for key in ("redis/reclaimed", "redis/journal/recovered"))
    assert taken_back >= 1


def test_a_commit_left_by_a_dead_worker_is_finished_not_rerun(redis_server: str, tmp_path: Path) -> None:
    """A worker killed between journaling a checkpoint and acking it: a live worker publishes its
    hidden parts and acks its requests (re-running them would write their rows twice)."""
    client = redis.Redis.from_url(redis_server)
    prefix = f"recovery:{uuid.uuid4().hex}"  # its own keys, whatever other tests left behind
    dead = Frontier(client, FrontierKeys.under(f"{prefix}:books"), lease_seconds=4, worker="dead")
    for n in range(3):
        dead.push(f"not a request {n}".encode(), priority=0)  # re-run, it would fail to decode
    leases = [t.lease for t in dead.take(3)[0]]
    writer = DatasetWriter(pafs.LocalFileSystem(), str(tmp_path / "theirs"), arrow_schema(Row))
    writer.defer_publish = True
    for n in range(3):
        writer.append((n, "row of a dead worker"))
    moves = writer.checkpoint(writer.take())
    entry = {"worker": "dead", "leases": leases, "moves": [list(m) for m in moves]}
    dead.journal("dead:0", json.dumps(entry).encode(), leases)
    assert ds.dataset(tmp_path / "theirs", format="parquet").count_rows() == 0

    with LocalSite(books=40, seed=9) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", f"REDIS_URL={redis_server}", "-s", f"REDIS_KEY_PREFIX={prefix}:%(spider)s",
                           *FAST_LEASES)
    assert result.returncode == 0, result.log[-3000:]
    assert "Traceback" not in result.log
    assert "Finishing the commit of a dead worker (dead, 3 request(s))" in result.log
    assert stat(result, "redis/journal/recovered") == 1
    assert ds.dataset(tmp_path / "theirs", format="parquet").count_rows() == 3  # published
    books = upcs(tmp_path / "out")
    assert len(books) == len(set(books)) == 40
    assert dead.counts().total == 0 and dead.entries() == {}  # acked, and the entry dropped


def test_seeding_from_a_redis_key(redis_server: str, tmp_path: Path) -> None:
    with LocalSite(books=40, seed=8) as site:
        client = redis.Redis.from_url(redis_server)
        client.lpush("books:start_urls", f'{{"url": "{site.url}"}}')
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}catalogue/page-1.html",
                           "-s", f"REDIS_URL={redis_server}", *FAST_LEASES)
    assert result.returncode == 0, result.log[-3000:]
    assert len(set(upcs(tmp_path / "out"))) == 40
    assert stat(result, "redis/start_urls") == 1


def test_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    with RedisServer() as url:
        pass  # a port that just stopped listening
    secret_url = url.replace("redis://", "redis://:hunter2@")
    with LocalSite(books=5) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", f"REDIS_URL={secret_url}", timeout=120)
    assert result.returncode != 0
    assert "Cannot reach Redis at redis://***@127.0.0.1" in result.log
    assert "Engine slot" not in result.log  # failed at start-up, before the engine opened
    assert "hunter2" not in result.log


def test_workers_ride_out_a_redis_restart(slow_site: LocalSite, tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path)
    url = server.start()
    try:
        logs = [tmp_path / f"w{n}.log" for n in range(2)]
        workers = [start_worker(slow_site, tmp_path / "out", log, url) for log in logs]
        wait_for(lambda: slow_site.stats()["requests"] > 300, timeout=120)
        server.stop()  # a clean shutdown: the append-only file keeps the frontier
        server.start()  # same port, same data
        assert [w.wait(timeout=300) for w in workers] == [0, 0]
    finally:
        server.stop()
    rows = upcs(tmp_path / "out")
    assert len(rows) == 1000 and len(set(rows)) == 1000
