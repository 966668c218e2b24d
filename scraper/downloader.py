"""Scrapy 2.19's downloader, with a per-slot concurrency that holds.

Scrapy's ``_process_queue`` starts each transfer as an asyncio task, and a request joins
``slot.transferring`` only when that task first runs. One pass over a slot's queue therefore starts
every queued request whatever ``slot.concurrency`` says: ``CONCURRENT_REQUESTS_PER_DOMAIN=1`` kept ~7
requests in flight on a slow local site, and adaptive concurrency's limits did not bind. Here a
request counts as transferring from the moment it leaves the slot's queue.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from scrapy.core.downloader import Downloader as ScrapyDownloader
from scrapy.core.downloader import Slot
from scrapy.http import Request, Response
from twisted.internet.defer import Deferred


class Downloader(ScrapyDownloader):
    def _wait_for_download(self, slot: Slot, request: Request,
                           queue_dfd: Deferred[Response]) -> Coroutine[Any, Any, None]:
        slot.transferring.add(request)  # now, not when the task starts (Scrapy's _download adds it again)
        return super()._wait_for_download(slot, request, queue_dfd)
