"""Adaptive concurrency vs AutoThrottle vs fixed concurrency, on the local rate-limited site.

Every variant crawls the same local site (token bucket of R requests/s answering 429 + Retry-After
beyond it) with the same spider and stack; only the concurrency control differs. Measured at the
server, per second: goodput (200s/s) as a fraction of R and the 429 share, both after a warm-up, and
the time until the 3-second rolling goodput first reaches 0.9 R. Then, on the same site without a
rate limit, pages/s of ours vs the same stack with adaptive concurrency off (CONCURRENT_REQUESTS 16,
8 per domain: Scrapy's defaults; only the concurrency control differs) and vs Scrapy's defaults
throughout (``bench.crawl``'s ``stock``: none of our components, CONCURRENT_ITEMS 100).
Run: ``python -m bench.ratelimit [--rate 40] [--books 600] [--repeats 1]``.
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
from bench.crawl import STOCK as SCRAPY_DEFAULTS
from scraper.localsite.process import LocalSite

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 5  # seconds excluded from the steady-state figures

OURS: list[str] = []
STOCK = ["-s", "ADAPTIVE_CONCURRENCY_ENABLED=False"]
VARIANTS = {
    "adaptive (ours)": OURS,
    "AutoThrottle defaults": [*STOCK, "-s", "AUTOTHROTTLE_ENABLED=True"],
    "AutoThrottle target 8": [*STOCK, "-s", "AUTOTHROTTLE_ENABLED=True",
                              "-s", "AUTOTHROTTLE_TARGET_CONCURRENCY=8"],
    "fixed 8": [*STOCK, "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8"],
    "fixed 64": [*STOCK, "-s", "CONCURRENT_REQUESTS=64", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=64"],
}


def crawl(site: LocalSite, args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "scrapy", "crawl", "books", "-a", f"start_url={site.url}",
                "-s", f"PARQUET_URI={out}", "-s", "LOG_LEVEL=WARNING", *args]
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


def rate_limited_run(site: LocalSite, rate: float, args: list[str]) -> dict[str, float]:
    site.reset()
    wall = crawl(site, args)
    timeline = site.stats(timeline=True)["timeline"]
    seconds = sorted(int(s) for s in timeline)
    first, last = seconds[0], seconds[-1]
    ok = {s: int(timeline.get(str(s), {}).get("200", 0)) for s in range(first, last + 1)}
    limited = {s: int(timeline.get(str(s), {}).get("429", 0)) for s in range(first, last + 1)}
    steady = range(first + WARMUP, last)  # the last second is partial
    ok_steady = sum(ok[s] for s in steady)
    limited_steady = sum(limited[s] for s in steady)
    converge = next((s - first for s in range(first, last - 2)
                     if sum(ok[s + i] for i in range(3)) / 3 >= 0.9 * rate), float("nan"))
    return {"goodput_of_R": ok_steady / max(1, len(steady)) / rate,
            "share_429": limited_steady / max(1, ok_steady + limited_steady),
            "converge_s": converge, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--books", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--fast-books", type=int, default=1000)
    parser.add_argument("--fast-repeats", type=int, default=3)
    args = parser.parse_args()

    with LocalSite(books=args.books, seed=3, rate_limit=args.rate, burst=int(args.rate)) as site:
        results = alternate({name: (lambda a=a: rate_limited_run(site, args.rate, a))
                             for name, a in VARIANTS.items()}, args.repeats)
    rows = [{"variant": name, "goodput / R": r["goodput_of_R"], "429 share": r["share_429"],
             "converge s": r["converge_s"], "wall s": r["wall_s"]} for name, r in results.items()]
    report("ratelimit", f"Rate-limited site: R = {args.rate:g} req/s (burst {int(args.rate)}), "
           f"{args.books} books, steady state after {WARMUP} s, median of {args.repeats}", rows,
           {"target": "goodput >= 0.95 R with 429 share <= 2% after warm-up"})

    with LocalSite(books=args.fast_books, seed=4) as fast:
        pages = args.fast_books + -(-args.fast_books // 20) + 1
        speed = alternate({
            "adaptive (ours)": lambda: {"pages_per_s": pages / crawl(fast, OURS)},
            "adaptive off (stock concurrency)": lambda: {"pages_per_s": pages / crawl(fast, STOCK)},
            "Scrapy defaults throughout": lambda: {"pages_per_s": pages / crawl(fast, SCRAPY_DEFAULTS)},
        }, args.fast_repeats)
    base = speed["adaptive off (stock concurrency)"]["pages_per_s"]
    defaults = speed["Scrapy defaults throughout"]["pages_per_s"]
    report("unthrottled", f"Unthrottled local site, {args.fast_books} books, whole process, "
           f"median of {args.fast_repeats} alternating runs",
           [{"variant": name, "pages/s": r["pages_per_s"], "vs adaptive off": r["pages_per_s"] / base,
             "vs Scrapy defaults": r["pages_per_s"] / defaults}
            for name, r in speed.items()],
           {"target": "adaptive >= stock Scrapy at its default settings (1.0x 'vs Scrapy defaults')"})


if __name__ == "__main__":
    main()
