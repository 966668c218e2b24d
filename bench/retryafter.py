"""What a stock Scrapy project adds to honour ``Retry-After`` (Scrapy's RetryMiddleware retries a 429 at
once): a downloader middleware that waits out the header before Scrapy's RetryMiddleware sees the 429.
It holds the download slot while it waits, as the usual recipes do. ``bench.ratelimit`` runs it as
"stock + retries + Retry-After": the cost of honouring the header, measured without our components."""

from __future__ import annotations

import asyncio

from scrapy import Request
from scrapy.http import Response

MAX_WAIT = 60.0  # s: a longer or unparsable header is not waited out


class WaitRetryAfter:
    async def process_response(self, request: Request, response: Response) -> Response:
        if response.status == 429:
            try:
                wait = float(response.headers.get(b"Retry-After", b"").decode())
            except ValueError:
                wait = 0.0
            if 0 < wait <= MAX_WAIT:
                await asyncio.sleep(wait)
        return response
