"""Crawl speed, CPU and memory of the whole crawl process: ours vs stock Scrapy vs a seed-style script.

Every run is a whole process (a subprocess started cold, timed with the wall clock until it exits)
crawling the local books site (no added latency, so the crawl is CPU-bound); variants alternate, the
table has medians of ``--repeats`` rounds, on the ``--books`` site and on the ``--big-books`` site
(20x by default; ``--rss-books N`` adds a third size, e.g. exactly 10x). Variants:

- ``ours``: ``scrapy crawl books`` with the project's settings as they are.
- ``stock``: the same spider with our components off, Scrapy's defaults back: DOWNLOADER_MIDDLEWARES,
  SPIDER_MIDDLEWARES and EXTENSIONS ``{}`` (Scrapy's built-in ones only: its RetryMiddleware,
  UserAgentMiddleware, LogStats... instead of ours), SCHEDULER ``scrapy.core.scheduler.Scheduler``,
  CONCURRENT_ITEMS 100, DOWNLOAD_HANDLERS ``{}`` (Scrapy's own HTTP/1.1 handler), ITEM_PIPELINES only
  the Parquet pipeline (so both write the same dataset, un-normalised here), and
  ADAPTIVE_CONCURRENCY_ENABLED, NORMALIZE_ENABLED, RAW_ARCHIVE_ENABLED, DEADLETTER_ENABLED False.
  Everything else stays as the project sets it, all equal to Scrapy's
  defaults or harmless here: CONCURRENT_REQUESTS 16, CONCURRENT_REQUESTS_PER_DOMAIN 8 (so one host gets
  8 in flight; ours lets its adaptive controller raise the host's slot up to the global 16),
  ROBOTSTXT_OBEY True (one extra request), USER_AGENT, TELNETCONSOLE_ENABLED False.
- ``ours, N Redis workers``: N ``ours`` processes sharing a throwaway redis-server (as in
  ``bench/workers.py``: NORMALIZE_WORKERS=0 each, so every worker is one process normalising inline and
  scale-out, not a pool, spreads the work over the cores); flushed before each run.
- ``floor: bare Scrapy + parse + normalise``: the same spider with nothing but Scrapy's engine and
  the normalisation pipeline: no downloader or spider middlewares (Scrapy's included), no extensions
  but CoreStats, no output (items are parsed, normalised and discarded; no rows are expected). It does
  the seed-style script's work except writing, so its CPU per page (pool included) is a floor for any
  Scrapy stack that also writes, and the notes turn it into the most pages/s such a stack could reach
  on every core of this machine.
- ``seed-style``: ``python -m bench.seedstyle`` (asyncio + aiohttp, 16 concurrent fetches, a forkserver
  process pool normalising batches of 50, one Parquet file at the end).

Every run's output is checked: exactly ``books`` Parquet rows. Columns: pages/s = requests the site
served / wall seconds (the crawl's robots.txt included); ratios against seed-style and stock in the
same run; CPU ms/page of the crawl's whole process tree (user + system, from
``getrusage(RUSAGE_CHILDREN)`` deltas: that includes the forkserver and the normalisation pool workers,
because this process makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``) so the pool processes,
orphaned when the crawl exits, are re-parented to it and reaped here); the main process's own CPU
ms/page (``wait4``) and its share of one core (CPU seconds / wall seconds: 100% = the one-core ceiling
of a single event loop; 1000 / that ms/page is the most pages/s that process can reach); the site
server's CPU ms/page (from ``/proc/<pid>/stat``, same machine, same cores); peak RSS of the main crawl
process (VmHWM from ``/proc/<pid>/status`` sampled at 20 Hz until it exits: ``ru_maxrss`` of children
is a max over every child ever, useless here; pool workers are not counted; with N Redis workers, the
largest worker). Notes give the core count, each variant's peak-RSS growth from the smallest site to
each larger one (the Parquet pipeline buffers up to PARQUET_ROW_GROUP_SIZE = 10,000 rows per row group,
so ours and stock grow until the site has 10,000 books, then stay flat; the seed-style script keeps
every row until the end), and the target. "other CPU %" is the rest of the machine's busy time during a
run (``/proc/stat`` minus the crawl tree, the site server and redis-server: this harness, anything else
running) in % of one core: a disturbed run shows, and a warning is printed above 10%.
Run: ``python -m bench.crawl [--books 1000] [--big-books 20000] [--rss-books N] [--repeats 3]
[--workers 2] [--seed-workers N]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.common import alternate, report
from localsite.process import LocalSite

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
TICK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36
SAMPLE_INTERVAL = 0.05  # s between peak-RSS samples (20 Hz)
REAP_TIMEOUT = 30.0  # s the crawl's orphaned pool processes get to exit after it
SEED = "seed-style"
STOCK = [
    "-s", "DOWNLOADER_MIDDLEWARES={}", "-s", "SPIDER_MIDDLEWARES={}", "-s", "EXTENSIONS={}",
    "-s", "SCHEDULER=scrapy.core.scheduler.Scheduler", "-s", "CONCURRENT_ITEMS=100",
    "-s", "DOWNLOAD_HANDLERS={}", "-s", "DOWNLOADER=scrapy.core.downloader.Downloader",
    "-s", "ITEM_PIPELINES=" + json.dumps({"scraper.pipelines.parquet.ParquetPipeline": 800}),
    "-s", "ADAPTIVE_CONCURRENCY_ENABLED=False", "-s", "NORMALIZE_ENABLED=False",
    "-s", "RAW_ARCHIVE_ENABLED=False", "-s", "DEADLETTER_ENABLED=False",
]
# The floor: Scrapy's engine, the books spider's parsing and the normalisation pool, nothing else. No
# middlewares, spider middlewares or extensions (CoreStats aside), Scrapy's scheduler and HTTP handler,
# no output: the items are parsed, normalised, then discarded. It does what the seed-style script does
# except writing, so no Scrapy stack that also writes can be cheaper per page.
FLOOR = [
    "-s", "DOWNLOADER_MIDDLEWARES_BASE={}", "-s", "SPIDER_MIDDLEWARES_BASE={}",
    "-s", "EXTENSIONS_BASE=" + json.dumps({"scrapy.extensions.corestats.CoreStats": 0}),
    "-s", "DOWNLOADER_MIDDLEWARES={}", "-s", "SPIDER_MIDDLEWARES={}", "-s", "EXTENSIONS={}",
    "-s", "SCHEDULER=scrapy.core.scheduler.Scheduler", "-s", "DOWNLOAD_HANDLERS={}",
    "-s", "DOWNLOADER=scrapy.core.downloader.Downloader",
    "-s", "ITEM_PIPELINES=" + json.dumps({"scraper.pipelines.normalize.NormalizePipeline": 300}),
    "-s", "ADAPTIVE_CONCURRENCY_ENABLED=False",
    "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16",
]
FLOOR_NAME = "floor: bare Scrapy + parse + normalise"
COLUMNS = {  # table column -> metric of a run (medians)
    "pages/s": "pages_per_s", "wall s": "wall_s", "CPU ms/page (tree)": "tree_ms_per_page",
    "main CPU ms/page": "main_ms_per_page", "main core %": "main_core_pct",
    "server CPU ms/page": "server_ms_per_page", "peak RSS MiB": "rss_mib", "other CPU %": "other_cpu_pct",
}


@dataclass
class Usage:
    """What one run of one or more processes cost."""

    wall: float
    tree_cpu: float  # s, every process of the run and their descendants
    main_cpu: float  # s, the started processes themselves
    rss_peak: int  # bytes, the largest started process's VmHWM
    stdout: list[str] = field(default_factory=list)


def become_subreaper() -> bool:
    """Orphaned descendants (the crawl's pool processes) are re-parented to us, so we can reap them
    and their CPU time reaches our RUSAGE_CHILDREN."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children() -> set[int]:
    """Pids whose parent is this process (from /proc: re-parented orphans too)."""
    me, found = os.getpid(), set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
                found.add(int(entry.name))
    return found


def reap_orphans(keep: set[int], timeout: float = REAP_TIMEOUT) -> None:
    """Wait for (reap) every child that is not in ``keep``; SIGKILL any still there at ``timeout``."""
    deadline = time.monotonic() + timeout
    while pids := children() - keep:
        for pid in pids:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.01)


def machine_busy() -> float:
    """CPU seconds all cores have spent busy (not idle or waiting for I/O) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class PeakRss(threading.Thread):
    """Samples VmHWM (the kernel's own peak RSS) of ``pids`` until :meth:`stop`; max per pid."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.peaks = dict.fromkeys(pids, 0)
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            for pid in self.peaks:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peaks[pid] = max(self.peaks[pid], int(line.split()[1]) * 1024)
            if self._done.wait(SAMPLE_INTERVAL):
                return

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peaks.values())


def run_processes(argvs: list[list[str]], env: dict[str, str]) -> Usage:
    """Run ``argvs`` at once (each a whole process) until all exit; raise with a failure's stderr."""
    keep = children()  # the site and Redis servers: not ours to reap
    with tempfile.TemporaryDirectory() as logs:
        outs = [open(Path(logs, f"{i}.out"), "w+") for i in range(len(argvs))]
        errs = [open(Path(logs, f"{i}.err"), "w+") for i in range(len(argvs))]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            for argv, out, err in zip(argvs, outs, errs, strict=True):
                procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err))
            sampler = PeakRss([p.pid for p in procs])
            sampler.start()
            main_cpu = 0.0
            for proc in procs:
                _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage
                proc.returncode = os.waitstatus_to_exitcode(status)
                main_cpu += usage.ru_utime + usage.ru_stime
            wall = time.perf_counter() - started
            rss = sampler.stop()
            reap_orphans(keep)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            for proc, argv, err in zip(procs, argvs, errs, strict=True):
                if proc.returncode:
                    err.seek(0)
                    tail = err.read()[-3000:]
                    raise RuntimeError(f"exit code {proc.returncode}: {' '.join(argv)}\n{tail}")
            stdout = []
            for out in outs:
                out.seek(0)
                stdout.append(out.read())
        finally:
            for proc in procs:
                if proc.returncode is None:  # we are failing: stop what we started
                    proc.kill()
                    proc.wait()
                    reap_orphans(keep, timeout=5.0)
            for file in (*outs, *errs):
                file.close()
    tree = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Usage(wall, tree, main_cpu, rss, stdout)


def parquet_rows(directory: str) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in Path(directory).rglob("*.parquet")
               if not path.name.startswith("."))


def scrapy_argv(site: LocalSite, out: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "scrapy", "crawl", "books", "-a", f"start_url={site.url}",
            "-s", f"PARQUET_URI={out}", "-s", "LOG_LEVEL=WARNING", *extra]


def measure(site: LocalSite, books: int, argvs: Callable[[str], list[list[str]]],
            env: dict[str, str], redis_pid: int | None = None, rows_expected: int | None = None,
            ) -> dict[str, float]:
    """One run: the site's counters reset, ``argvs(outdir)`` run, its rows checked (``books`` of
    them unless ``rows_expected`` says otherwise), costs per page."""
    site.reset()
    assert site._proc is not None
    with tempfile.TemporaryDirectory() as out:
        redis_before = process_cpu(redis_pid) if redis_pid else 0.0
        server_before, busy_before = process_cpu(site._proc.pid), machine_busy()
        usage = run_processes(argvs(out), env)
        server_cpu = process_cpu(site._proc.pid) - server_before
        busy = machine_busy() - busy_before
        redis_cpu = process_cpu(redis_pid) - redis_before if redis_pid else 0.0
        rows = parquet_rows(out)
    if rows != (books if rows_expected is None else rows_expected):
        raise AssertionError(f"{rows} Parquet rows for a {books}-book site: {argvs('OUT')[0]}")
    pages = site.stats()["requests"]
    result = {
        "pages": pages, "rows": rows, "wall_s": usage.wall, "pages_per_s": pages / usage.wall,
        "tree_ms_per_page": 1000 * usage.tree_cpu / pages,
        "main_ms_per_page": 1000 * usage.main_cpu / pages,
        "main_core_pct": 100 * usage.main_cpu / usage.wall,
        "server_ms_per_page": 1000 * server_cpu / pages, "rss_mib": usage.rss_peak / MIB,
        "redis_ms_per_page": 1000 * redis_cpu / pages,
        # Everything else the machine did meanwhile (this harness, other users): should be ~0.
        "other_cpu_pct": max(0.0, 100 * (busy - usage.tree_cpu - server_cpu - redis_cpu) / usage.wall),
    }
    for text in usage.stdout:  # the seed-style script's own account of its time
        lines = text.strip().splitlines()
        if lines and lines[-1].startswith("{"):
            summary = json.loads(lines[-1])
            result.update({f"seed_{k}": v for k, v in summary.items() if k.endswith("_s")})
    return result


def variants(site: LocalSite, books: int, workers: int, redis_server: Any,
             seed_workers: int) -> dict[str, Callable[[], dict[str, float]]]:
    """The runs for one site; ``redis_server`` is a started ``tests.helpers.RedisServer`` (or None)."""
    env = {k: v for k, v in os.environ.items() if k != "SCRAPER_REDIS_URL"}
    env["PYTHONPATH"] = str(ROOT)
    runs: dict[str, Callable[[], dict[str, float]]] = {
        SEED: lambda: measure(site, books, lambda out: [[
            sys.executable, "-m", "bench.seedstyle", site.url, out, "--concurrency", "16",
            "--workers", str(seed_workers)]], env),
        "stock": lambda: measure(site, books, lambda out: [scrapy_argv(site, out, STOCK)], env),
        "ours": lambda: measure(site, books, lambda out: [scrapy_argv(site, out, [])], env),
        FLOOR_NAME: lambda: measure(site, books, lambda out: [scrapy_argv(site, out, FLOOR)], env,
                                    rows_expected=0),
    }
    if redis_server is not None and workers:
        def distributed() -> dict[str, float]:
            from redis import Redis
            Redis.from_url(redis_server.url).flushdb()  # a throwaway server: every run starts fresh
            return measure(site, books, lambda out: [
                scrapy_argv(site, f"{out}/worker{i}", ["-s", "NORMALIZE_WORKERS=0"])
                for i in range(workers)], {**env, "SCRAPER_REDIS_URL": redis_server.url},
                redis_server.proc.pid)
        runs[f"ours, {workers} Redis worker{'s' if workers > 1 else ''}"] = distributed
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--books", type=int, default=1000)
    parser.add_argument("--big-books", type=int, default=20000)
    parser.add_argument("--rss-books", type=int, default=None,
                        help="an extra site size (e.g. 10x --books) for the peak-RSS growth")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="Redis workers (0: skip that variant)")
    parser.add_argument("--seed-workers", type=int, default=os.cpu_count() or 1,
                        help="seed-style pool size (default: CPU count, like NORMALIZE_WORKERS)")
    args = parser.parse_args()
    sizes = sorted({args.books, args.big_books, *([args.rss_books] if args.rss_books else [])})
    subreaper = become_subreaper()
    results: dict[int, dict[str, dict[str, float]]] = {}
    redis_server = None
    if args.workers:
        from tests.helpers import RedisServer
        redis_server = RedisServer()
    try:
        if redis_server is not None:
            redis_server.start()
        for books in sizes:
            with LocalSite(books=books, seed=5) as site:
                runs = variants(site, books, args.workers, redis_server, args.seed_workers)
                print(f"{books} books: {', '.join(runs)}; {args.repeats} round(s)...", flush=True)
                results[books] = alternate(runs, args.repeats)
    finally:
        if redis_server is not None:
            redis_server.stop()

    rows = []
    for books, by_variant in results.items():
        seed, stock = by_variant[SEED]["pages_per_s"], by_variant["stock"]["pages_per_s"]
        for name, r in by_variant.items():
            rows.append({"books": books, "variant": name, "pages/s": r["pages_per_s"],
                         "vs seed-style": r["pages_per_s"] / seed, "vs stock": r["pages_per_s"] / stock,
                         **{column: r[key] for column, key in COLUMNS.items() if key != "pages_per_s"}})
    notes: dict[str, Any] = {"cores": os.cpu_count(), "concurrency": (
        "16 requests in flight at most for every variant (CONCURRENT_REQUESTS / the seed script's 16 "
        "tasks); stock Scrapy also caps one host at 8 (CONCURRENT_REQUESTS_PER_DOMAIN)")}
    busiest = max(rows, key=lambda row: row["other CPU %"])
    if busiest["other CPU %"] > 10:
        notes["warning: other load"] = (
            f"other processes used {busiest['other CPU %']:.0f}% of a core during {busiest['variant']} "
            f"({busiest['books']} books): numbers disturbed, rerun on a quiet machine")
    if not subreaper:
        notes["warning"] = "PR_SET_CHILD_SUBREAPER failed: tree CPU misses orphaned pool workers"
    small = sizes[0]
    for big in sizes[1:]:
        for name in results[small]:
            before, after = results[small][name]["rss_mib"], results[big][name]["rss_mib"]
            notes[f"peak RSS growth {name}, {small} -> {big} books ({big / small:g}x)"] = (
                f"{after - before:+.1f} MiB (x{after / before:.2f})")
    biggest = results[sizes[-1]]
    for name, r in biggest.items():
        if r.get("redis_ms_per_page"):
            notes[f"redis-server CPU ms/page, {name} ({sizes[-1]} books; not in the tree CPU)"] = round(
                r["redis_ms_per_page"], 2)
    for name in ("ours", "stock", SEED):
        ms = biggest[name]["main_ms_per_page"]
        notes[f"one-core ceiling {name} ({sizes[-1]} books)"] = (
            f"main process {ms:.2f} CPU ms/page -> at most {1000 / ms:,.0f} pages/s on one core; "
            f"ran at {biggest[name]['main_core_pct']:.0f}% of a core")
    seed_split = {k.removeprefix("seed_"): round(v, 2) for k, v in biggest[SEED].items()
                  if k.startswith("seed_")}
    notes[f"seed-style time split ({sizes[-1]} books, s)"] = seed_split
    floor = biggest[FLOOR_NAME]
    cores = os.cpu_count() or 1
    floor_bound = cores * 1000 / (floor["tree_ms_per_page"] + floor["server_ms_per_page"])
    notes[f"floor on every core ({sizes[-1]} books)"] = (
        f"bare Scrapy + parse + normalise costs {floor['tree_ms_per_page']:.2f} CPU ms/page (pool "
        f"included) and the site server {floor['server_ms_per_page']:.2f}: spread perfectly over {cores} "
        f"cores (N processes, no coordination cost), at most {floor_bound:,.0f} pages/s = "
        f"{floor_bound / biggest[SEED]['pages_per_s']:.2f}x seed-style, before any output (the "
        f"seed-style script also writes Parquet)")
    ours = {name: r["pages_per_s"] for name, r in biggest.items() if name.startswith("ours")}
    best = max(ours, key=ours.__getitem__)
    ratio = ours[best] / biggest[SEED]["pages_per_s"]
    notes["target"] = (f"our full stack >= 1.0x seed-style pages/s on the {sizes[-1]}-book site (same "
                       f"concurrency per process; Redis workers may use every core): best is {best}, "
                       f"{ratio:.2f}x, {'met' if ratio >= 1.0 else 'NOT met'}")
    report("crawl", f"Crawl speed, whole process, local books site, medians of {args.repeats} "
           "alternating run(s)", rows, notes)


if __name__ == "__main__":
    main()
