"""Item pipelines."""

from __future__ import annotations

import asyncio

from scrapy.crawler import Crawler


def close_crawl(crawler: Crawler, reason: str) -> None:
    """Ask the engine to close the spider with ``reason`` (a pipeline cannot go on), without waiting:
    a pipeline's ``process_item`` must return, and the close drains the items still in flight."""
    try:
        engine = crawler.engine
    except RuntimeError:  # no crawl running (the pipeline used on its own)
        engine = None
    if engine is not None:
        asyncio.ensure_future(engine.close_spider_async(reason=reason))
