"""Normalisation throughput and event-loop lag: inline vs process pool vs pool with batching.

Feeds N realistic book records (from the local site's catalogue) through
:class:`~scraper.normalize.pool.BatchNormalizer` the way the pipeline does (many items in flight,
bounded like Scrapy's item processing), while a ticker task measures how late the event loop wakes.
Run: ``python -m bench.pipeline [--items 4000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

from bench.common import alternate_runs, medians, report
from localsite.catalog import Catalog
from scraper.normalize.pool import BatchNormalizer

FUNCTION = "scraper.normalize.books.normalize_book"
IN_FLIGHT = 256  # items the crawl has in the pipeline at once (producers, one item each)
TICK = 0.005


def make_records(n: int) -> list[dict]:
    now = datetime.now(UTC)
    return [{**book.expected_item("http://127.0.0.1/"), "scraped_at": now} for book in Catalog(n, seed=3)]


async def _measure(normalizer: BatchNormalizer, records: list[dict]) -> dict[str, float]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            expected = loop.time() + TICK
            await asyncio.sleep(TICK)
            lags.append(max(0.0, loop.time() - expected))

    todo = iter(records)

    async def producer() -> None:  # like a Scrapy item task: one item in flight at a time
        for record in todo:
            outcome = await normalizer.submit(FUNCTION, record)
            assert outcome.ok, outcome.error

    normalizer.start()
    await normalizer.submit(FUNCTION, records[0])  # workers up and warm: measure steady state
    tick = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    await normalizer.close()
    lags.sort()
    return {"items_per_s": len(records) / elapsed,
            "lag_p50_ms": 1000 * statistics.median(lags) if lags else 0.0,
            "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else 0.0}


def _normalize_chunk(records: list[dict]) -> int:
    from scraper.normalize.books import normalize_book
    for record in records:
        normalize_book(record)
    return len(records)


def parallel_ceiling(records: list[dict], workers: int) -> dict[str, float]:
    """The speedup ``workers`` bare processes get over one, running the normaliser with no IPC and
    no event loop: the most any pool can reach on this machine right now."""
    chunk = records[: max(200, len(records) // workers)]  # together: the pool's whole workload
    timings = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        list(pool.map(_normalize_chunk, [chunk[:10]] * workers))  # start and warm every worker
        for n in (1, workers):
            started = time.perf_counter()
            list(pool.map(_normalize_chunk, [chunk] * n))
            timings[n] = time.perf_counter() - started
    return {"ceiling": workers * timings[1] / timings[workers]}


async def _idle_loop(seconds: float) -> dict[str, float]:
    """Loop lag with no pipeline at all: what the machine itself adds."""
    loop = asyncio.get_running_loop()
    lags, end = [], loop.time() + seconds
    while loop.time() < end:
        expected = loop.time() + TICK
        await asyncio.sleep(TICK)
        lags.append(max(0.0, loop.time() - expected))
    lags.sort()
    return {"items_per_s": 0.0, "lag_p50_ms": 1000 * statistics.median(lags),
            "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    records = make_records(args.items)
    variants = {
        "idle loop (no pipeline)": lambda: asyncio.run(_idle_loop(3.0)),
        "inline": lambda: asyncio.run(_measure(BatchNormalizer(workers=0), records)),
        "pool, batch 1": lambda: asyncio.run(_measure(
            BatchNormalizer(workers=args.workers, batch_size=1, max_pending=4 * args.workers), records)),
        "pool, batch 50": lambda: asyncio.run(_measure(
            BatchNormalizer(workers=args.workers, batch_size=50), records)),
    }
    variants["bare processes (ceiling)"] = lambda: parallel_ceiling(records, args.workers)
    runs = alternate_runs(variants, args.repeats)
    results = medians(runs)
    ceiling = results.pop("bare processes (ceiling)")["ceiling"]
    base = results["inline"]["items_per_s"]
    # The machine's speed drifts over a run; a ratio of two runs in the same round cancels most of it.
    paired = sorted(pool["items_per_s"] / inline["items_per_s"]
                    for pool, inline in zip(runs["pool, batch 50"], runs["inline"], strict=True))
    idle_p99 = results["idle loop (no pipeline)"]["lag_p99_ms"]
    rows = [{"variant": name, "items/s": r["items_per_s"], "vs inline": r["items_per_s"] / base,
             "loop lag p50 ms": r["lag_p50_ms"], "loop lag p99 ms": r["lag_p99_ms"],
             "p99 lag over idle ms": r["lag_p99_ms"] - idle_p99}
            for name, r in results.items()]
    best = max(r["items_per_s"] for n, r in results.items() if n.startswith("pool")) / base
    report("pipeline", f"Normalisation pipeline: {args.items} book items, {args.workers} workers, "
           f"median of {args.repeats} alternating runs", rows,
           {"parallel ceiling (bare processes, same run)": ceiling,
            "best pool vs inline": best,
            "best pool as share of ceiling": best / ceiling,
            "pool, batch 50 vs inline within each round (median; min-max)":
                f"{statistics.median(paired):.2f}; {paired[0]:.2f}-{paired[-1]:.2f}",
            "target": "pool >= 1.8x inline; loop lag p99 < 50 ms"})


if __name__ == "__main__":
    main()
