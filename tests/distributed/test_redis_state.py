"""Redis state that cannot silently lie, end to end on real redis-servers: a dead run's leftovers stop
the next start (one line naming the fix) until reset; a frontier lost to a Redis restart without
persistence stops the workers with a non-zero exit and no ``_SUCCESS``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.dataset as ds
from redis import Redis

from localsite.process import LocalSite
from scraper import outcome
from tests.distributed.test_redis_crawl import FAST_LEASES, start_worker
from tests.helpers import ROOT, RedisServer, run_crawl, wait_for


def scrapy(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "scrapy", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_dead_runs_leftovers_stop_the_start_until_reset_or_flushed(redis_server: str, tmp_path: Path) -> None:
    unique = uuid.uuid4().hex
    redis = ["-s", f"REDIS_URL={redis_server}", "-s", f"REDIS_KEY_PREFIX=test:{unique}:%(spider)s",
             "-s", f"REDIS_START_URLS_KEY=test:{unique}:start_urls", *FAST_LEASES]
    with LocalSite(books=40, seed=5) as site:
        crawl = ["-a", f"start_url={site.url}", *redis]

        def books(name: str, *args: str) -> int:
            result = run_crawl("books", tmp_path / name, *crawl, *args)
            assert result.returncode == 0, result.log[-3000:]
            return len(ds.dataset(tmp_path / name, format="parquet").to_table())

        # A run that ends with its dupefilter left behind (SCHEDULER_PERSIST here; a worker killed at
        # the end leaves the same): the next run would find every request a duplicate.
        assert books("first", "-s", "SCHEDULER_PERSIST=True") == 40
        requests = site.stats()["requests"]
        refused = run_crawl("books", tmp_path / "refused", *crawl)
        assert refused.returncode == outcome.NOT_STARTED, refused.log[-3000:]
        errors = [line for line in refused.log.splitlines() if " ERROR: " in line]
        assert "earlier run's leftovers" in errors[0] and "scrapy redis_reset books" in errors[0], errors
        assert "Traceback" not in refused.log
        assert site.stats()["requests"] == requests  # refused before the first request

        reset = scrapy("redis_reset", "books", *redis[:4])  # (the URL and the prefix)
        assert reset.returncode == 0 and "Deleted" in reset.stderr, reset.stderr[-2000:]
        assert books("after-reset", "-s", "SCHEDULER_PERSIST=True") == 40
        flushed = run_crawl("books", tmp_path / "flushed", *crawl, "-s", "SCHEDULER_FLUSH_ON_START=True")
        assert flushed.returncode == 0 and "SCHEDULER_FLUSH_ON_START: cleared" in flushed.log
        assert len(flushed.rows()) == 40
        # ...and a run that finished cleanly (SCHEDULER_PERSIST off) leaves nothing to refuse.
        assert books("again", "-s", "SCHEDULER_FLUSH_ON_START=False") == 40
        # A finished crawl whose last worker died before clearing (the others marked it finished):
        # the next run clears it by itself.
        server = Redis.from_url(redis_server)
        server.sadd(f"test:{unique}:books:dupefilter", "f" * 40)
        server.set(f"test:{unique}:books:finished", "1")
        after_finish = run_crawl("books", tmp_path / "after-finish", *crawl)
        assert after_finish.returncode == 0 and "of the finished crawl" in after_finish.log
        assert len(after_finish.rows()) == 40


def test_reset_refuses_while_a_worker_is_alive(redis_server: str, tmp_path: Path) -> None:
    redis = ["-s", f"REDIS_URL={redis_server}", "-s", f"REDIS_KEY_PREFIX=test:{uuid.uuid4().hex}:%(spider)s"]
    with LocalSite(books=400, seed=5, latency_ms=40) as site:
        worker = start_worker(site, tmp_path / "out", tmp_path / "w.log", redis_server, *redis[2:])
        try:
            wait_for(lambda: site.stats()["requests"] > 20, timeout=60)
            refused = scrapy("redis_reset", "books", *redis)
            assert refused.returncode == 1 and "worker(s) of the crawl" in refused.stderr, refused.stderr[-2000:]
        finally:
            worker.kill()
            worker.wait()
    forced = scrapy("redis_reset", "books", "--force", *redis)
    assert forced.returncode == 0 and "Deleted" in forced.stderr


def test_a_frontier_lost_to_a_redis_restart_stops_every_worker_with_no_success(
        tmp_path: Path) -> None:
    server = RedisServer()  # no persistence: a restart loses every key
    url = server.start()
    out = tmp_path / "out"
    try:
        with LocalSite(books=1000, seed=7, latency_ms=40) as site:
            logs = [tmp_path / f"w{n}.log" for n in range(2)]
            workers = [start_worker(site, out, log, url) for log in logs]
            wait_for(lambda: site.stats()["requests"] > 300, timeout=120)
            server.stop()
            server.start()  # same port, empty
            codes = [w.wait(timeout=300) for w in workers]
    finally:
        server.stop()
    texts = [log.read_text() for log in logs]
    assert codes == [outcome.STOPPED] * 2, [t[-2000:] for t in texts]
    for text in texts:
        assert "was lost (its epoch key is gone" in text
        assert "reason: redis_frontier_lost" in text.strip().splitlines()[-1]
    assert not (out / "_SUCCESS").exists()
