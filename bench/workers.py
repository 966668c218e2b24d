"""1 vs 2 Redis workers on a CPU-bound local crawl: does scale-out use both cores?

The local site is fast (no added latency), so one Scrapy process is CPU-bound; N workers share a
throwaway redis-server. Reported: pages/s of the whole crawl for 1 and 2 workers (medians of
alternating runs) and their ratio (target >= 1.8 on 2 cores). Each worker normalises with
``--normalize-workers`` pool processes (default 0: inline, so a worker is one process on one core and
scale-out, not a pool, spreads the work; 1 = each worker also has a pool process).
Run: ``python -m bench.workers [--books 5000] [--repeats 3] [--normalize-workers 0]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import alternate, report
from localsite.process import LocalSite
from tests.helpers import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def crawl(site: LocalSite, workers: int, redis_url: str, normalize_workers: int) -> dict[str, float]:
    site.reset()
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SCRAPER_REDIS_URL": redis_url}
        argv = [sys.executable, "-m", "scrapy", "crawl", "books", "-a", f"start_url={site.url}",
                "-s", f"PARQUET_URI={out}/data", "-s", "LOG_LEVEL=WARNING",
                "-s", f"NORMALIZE_WORKERS={normalize_workers}"]
        started = time.perf_counter()
        procs = [subprocess.Popen(argv, cwd=ROOT, env=env) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        elapsed = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"a worker failed: {codes}")
    pages = site.stats()["requests"]
    return {"seconds": elapsed, "pages": pages, "pages_per_s": pages / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--books", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--normalize-workers", type=int, default=0)
    args = parser.parse_args()
    with LocalSite(books=args.books, seed=5) as site, RedisServer() as redis_url:
        results = alternate({f"{n} worker{'s' if n > 1 else ''}":
                             (lambda n=n: crawl(site, n, redis_url, args.normalize_workers)) for n in (1, 2)},
                            args.repeats)
    rows = [{"variant": name, **values} for name, values in results.items()]
    one, two = (r["pages_per_s"] for r in rows)
    report("workers", f"Redis workers, {args.books}-book local site, NORMALIZE_WORKERS="
           f"{args.normalize_workers} per worker, medians of {args.repeats}", rows,
           {"2 workers / 1 worker (pages/s)": two / one, "target": ">= 1.8 on 2 cores"})


if __name__ == "__main__":
    main()
