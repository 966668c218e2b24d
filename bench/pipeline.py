"""Normalisation throughput and event-loop lag: inline vs process pool vs pool with batching, and the
same batching over ``concurrent.futures.ProcessPoolExecutor`` (the library alternative to our pool).

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
from scraper.normalize.pool import BatchNormalizer, Outcome

FUNCTION = "scraper.normalize.books.normalize_book"
IN_FLIGHT = 256  # items the crawl has in the pipeline at once (producers, one item each)
TICK = 0.005


def make_records(n: int) -> list[dict]:
    now = datetime.now(UTC)
    return [{**book.expected_item("http://127.0.0.1/"), "scraped_at": now} for book in Catalog(n, seed=3)]


async def _measure(normalizer: BatchNormalizer | ExecutorNormalizer, records: list[dict]) -> dict[str, float]:
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


def _run_batch(path: str, records: list[dict]) -> list[tuple[dict | None, str | None]]:
    """One batch in a worker process of the executor variant (the function looked up by path)."""
    from scrapy.utils.misc import load_object
    function = load_object(path)
    results: list[tuple[dict | None, str | None]] = []
    for record in records:
        try:
            results.append((function(record), None))
        except Exception as exc:  # noqa: BLE001 - as the pool reports it: per record
            results.append((None, f"{type(exc).__name__}: {exc}"))
    return results


class ExecutorNormalizer:
    """The alternative to ``scraper.normalize.pool``: the same batching (``batch_size`` records or
    ``max_wait`` seconds) over ``concurrent.futures.ProcessPoolExecutor`` and ``run_in_executor``,
    with the same ``submit``/``close`` interface, to decide whether our own pool earns its code."""

    def __init__(self, workers: int, batch_size: int = 50, max_wait: float = 0.05) -> None:
        self.workers, self.batch_size, self.max_wait = workers, batch_size, max_wait
        self.pool: ProcessPoolExecutor | None = None
        self.pending: list[tuple[str, dict, asyncio.Future[Outcome]]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.running: set[asyncio.Future] = set()

    def start(self) -> None:
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"))

    async def submit(self, path: str, record: dict) -> Outcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self.pending.append((path, record, future))
        if len(self.pending) >= self.batch_size:
            self._flush()
        elif self.timer is None:
            self.timer = loop.call_later(self.max_wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        assert self.pool is not None
        done = asyncio.get_running_loop().run_in_executor(self.pool, _run_batch, batch[0][0],
                                                          [record for _, record, _ in batch])
        self.running.add(done)

        def settle(done: asyncio.Future) -> None:
            self.running.discard(done)
            for (_, _, future), (value, error) in zip(batch, done.result(), strict=True):
                future.set_result(Outcome(value=value, error=error))

        done.add_done_callback(settle)

    async def close(self) -> None:
        self._flush()
        if self.running:
            await asyncio.gather(*self.running)
        assert self.pool is not None
        self.pool.shutdown()


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
        "concurrent.futures executor, batch 50": lambda: asyncio.run(_measure(
            ExecutorNormalizer(workers=args.workers, batch_size=50), records)),
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
