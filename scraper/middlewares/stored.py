"""What a re-drive and a resume after ``kill -9`` share: a spider middleware that drops requests for
URLs whose rows the dataset already holds, so re-crawling into a dataset never stores a row twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from scraper.crawling import stats_of


class SkipStoredUrls:
    crawler: Crawler
    stored: set[str]  # the dataset's ``url`` column (see scraper.parquet.dataset.stored_urls)
    stored_stat: ClassVar[str]  # counts the requests dropped

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        return (x for x in result if not self._stored(x))

    async def process_spider_output_async(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for x in result:
            if not self._stored(x):
                yield x

    def _stored(self, x: Any) -> bool:
        if self.stored and isinstance(x, Request) and x.url in self.stored:
            stats_of(self.crawler).inc_value(self.stored_stat)
            return True
        return False
