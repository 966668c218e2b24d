"""A seed-style books scraper: the afternoon script the Scrapy project is compared against.

asyncio + aiohttp with a fixed number of concurrent fetches (``--concurrency``, 16 like the crawl's
CONCURRENT_REQUESTS), a ``seen`` set, the pager and product links followed like ``scrapy crawl books``
does, parsed with the same Scrapy-free page objects (:mod:`scraper.pages.books`) on the event loop;
books normalised with :func:`scraper.normalize.books.normalize_book` in batches of 50 in a forkserver
``ProcessPoolExecutor`` (``--workers``, default: CPU count, like NORMALIZE_WORKERS); every row kept in
memory and written at the end as one zstd Parquet file with the project's Arrow schema for BookItem.
Prints one JSON line of counts and where the time went.
Run: ``python -m bench.seedstyle URL OUTDIR [--concurrency 16] [--workers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq

from scraper.items import BookItem
from scraper.normalize.books import normalize_book
from scraper.pages.books import parse_book, parse_listing
from scraper.parquet.schema import arrow_schema

BATCH = 50


def normalize_batch(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**record, **normalize_book(record)} for record in records]


async def scrape(start_url: str, concurrency: int, pool: ProcessPoolExecutor) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    queue.put_nowait((start_url, "listing"))
    seen = {start_url}
    batch: list[dict[str, Any]] = []
    batches: list[asyncio.Future[list[dict[str, Any]]]] = []
    counts = {"pages": 0, "errors": 0, "parse_s": 0.0}

    def follow(url: str, kind: str) -> None:
        if url not in seen:
            seen.add(url)
            queue.put_nowait((url, kind))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal batch
        while True:
            url, kind = await queue.get()
            try:
                async with session.get(url) as resp:
                    resp.raise_for_status()
                    html = await resp.text()
                counts["pages"] += 1
                started = time.thread_time()
                if kind == "listing":
                    listing = parse_listing(html, url)
                    for product in listing.product_urls:
                        follow(product, "book")
                    if listing.next_url:
                        follow(listing.next_url, "listing")
                else:
                    item = parse_book(html, url, scraped_at=datetime.now(UTC))
                    batch.append(dataclasses.asdict(item))
                    if len(batch) >= BATCH:
                        batches.append(loop.run_in_executor(pool, normalize_batch, batch))
                        batch = []
                counts["parse_s"] += time.thread_time() - started
            except Exception as exc:  # log and move on, like most such scripts
                counts["errors"] += 1
                print(f"failed {url}: {exc!r}")
            finally:
                queue.task_done()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await queue.join()
        for task in tasks:
            task.cancel()
    if batch:
        batches.append(loop.run_in_executor(pool, normalize_batch, batch))
    waited = time.perf_counter()
    rows = [row for done in await asyncio.gather(*batches) for row in done]
    return {**counts, "rows": rows, "normalize_wait_s": time.perf_counter() - waited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    started = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        result = asyncio.run(scrape(args.url, args.concurrency, pool))
    crawled = time.perf_counter()
    rows = result.pop("rows")
    args.outdir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=arrow_schema(BookItem))
    pq.write_table(table, args.outdir / "books.parquet", compression="zstd")
    print(json.dumps({**result, "rows": len(rows), "crawl_s": crawled - started,
                      "write_s": time.perf_counter() - crawled}))


if __name__ == "__main__":
    main()
