"""Helpers for end-to-end tests: run ``scrapy crawl`` in a subprocess like a user does."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CrawlResult:
    returncode: int
    log: str
    output: Path

    def rows(self) -> list[dict]:
        return ds.dataset(self.output, format="parquet").to_table().to_pylist()

    @property
    def stats(self) -> dict[str, Any]:
        return stats_of(self.output)


# For tests that serve bad pages on purpose: the crawl goes on and exits 0 (the thresholds that would fail
# it, exit status 5 and the monitors' 7, are tested in tests/commands/test_crawl.py).
TOLERATE_BAD_PAGES = ("-s", "CRAWL_MAX_DEADLETTER_SHARE=0.5", "-s", "MONITOR_MAX_MALFORMED_SHARE=0.5",
                      "-s", "MONITOR_MAX_ERROR_SHARE=0.5")


def run_crawl(spider: str, output: Path, *args: str, timeout: float = 300) -> CrawlResult:
    """``scrapy crawl <spider> -s PARQUET_URI=<output> <args>`` in a subprocess, from the repo root."""
    argv = crawl_argv(spider, output, *args)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return CrawlResult(proc.returncode, proc.stdout + proc.stderr, output)


def crawl_argv(spider: str, output: Path, *args: str) -> list[str]:
    """The crawl's final stats go to ``stats_file(output)`` (JSON: ``STATS_FILE``), for :func:`stat`."""
    stats = ("-s", f"STATS_FILE={stats_file(output)}") if isinstance(output, Path) else ()
    return [sys.executable, "-m", "scrapy", "crawl", spider, "-s", f"PARQUET_URI={output}", *stats, *args]


def stats_file(output: Path) -> Path:
    return output.with_name(f"{output.name}.stats.json")


def stats_of(output: Path) -> dict[str, Any]:
    """The final stats of the last crawl that wrote to ``output`` (empty if it wrote none)."""
    return read_stats(stats_file(output))


def read_stats(path: Path) -> dict[str, Any]:
    """A ``STATS_FILE`` (empty if the crawl wrote none)."""
    return json.loads(path.read_text()) if path.exists() else {}


def start_crawl(spider: str, output: Path, log: Path, *args: str) -> subprocess.Popen:
    """A crawl in its own process group (so a test can signal the group, like a terminal does)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as handle:
        return subprocess.Popen(crawl_argv(spider, output, *args), cwd=ROOT, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stat(crawl: CrawlResult | Path | dict[str, Any], key: str) -> int:
    """An integer from a crawl's final stats (0 when absent): a :class:`CrawlResult`, the output path
    of a crawl started with :func:`start_crawl`, or stats read with :func:`read_stats`."""
    if isinstance(crawl, dict):
        stats = crawl
    else:
        stats = crawl.stats if isinstance(crawl, CrawlResult) else stats_of(crawl)
    return int(stats.get(key, 0))


def wait_for(predicate, timeout: float = 60, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(interval)


class RedisServer:
    """``with RedisServer() as url:`` a private ``redis-server`` on a free port, no persistence."""

    def __init__(self, password: str | None = None, data_dir: Path | None = None) -> None:
        self.password = password
        self.data_dir = data_dir  # set: an append-only file there survives a restart
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make install-test installs it)")
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.data_dir is not None:
            argv += ["--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ready, timeout=30)
        return self.url

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
