from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from scrapy import Spider
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.test import get_crawler

from scraper.config import InvalidSetting
from scraper.extensions.deadletter import DeadLetterExtension
from scraper.pipelines.normalize import NormalizePipeline


@dataclass
class TextItem:
    url: str
    text: str
    poison: bool = False
    crash: bool = False
    n: int = 0
    pid: int | None = None

    normalizer: ClassVar[str] = "tests.normalize_helpers.upper"


class DemoSpider(Spider):
    name = "demo"


def make(tmp_path: Path, **settings):
    crawler = get_crawler(DemoSpider, settings_dict={"PARQUET_URI": str(tmp_path / "data"), **settings})
    crawler.spider = crawler._create_spider()
    return crawler, NormalizePipeline.from_crawler(crawler), DeadLetterExtension.from_crawler(crawler)


async def run(pipeline: NormalizePipeline, items: list) -> list:
    pipeline.open_spider()
    results = await asyncio.gather(*(pipeline.process_item(i) for i in items), return_exceptions=True)
    await pipeline.close_spider()
    return results


def test_bad_items_are_dead_lettered_the_rest_normalised(tmp_path: Path) -> None:
    crawler, pipeline, sink = make(tmp_path, NORMALIZE_WORKERS=2, NORMALIZE_BATCH_SIZE=4)
    items = [TextItem(f"http://x/{i}", f"t{i}", poison=i == 2, crash=i == 5, n=i) for i in range(12)]
    results = asyncio.run(run(pipeline, items))
    sink.close()
    dropped = [i for i, r in enumerate(results) if isinstance(r, DropItem)]
    assert dropped == [2, 5]
    assert all(r.text == f"T{i}" for i, r in enumerate(results) if i not in dropped)
    records = [json.loads(line) for line in Path(sink.path).read_text().splitlines()]
    assert sorted(r["url"] for r in records) == ["http://x/2", "http://x/5"]
    poison = next(r for r in records if r["url"] == "http://x/2")
    assert poison["error"] == "ValueError: poisoned record 2" and poison["item"]["text"] == "t2"
    assert Path(sink.path).parent == tmp_path / "data" / "_deadletter"
    stats = crawler.stats
    assert stats.get_value("normalize/errors") == 2 and stats.get_value("deadletter/count") == 2
    assert stats.get_value("normalize/pool_restarts") >= 1


def test_items_without_a_normalizer_pass_through(tmp_path: Path) -> None:
    _, pipeline, _ = make(tmp_path, NORMALIZE_WORKERS=0)
    item = {"url": "u"}
    assert asyncio.run(run(pipeline, [item])) == [item]


@pytest.mark.parametrize("setting,value", [
    ("NORMALIZE_WORKERS", "-1"), ("NORMALIZE_BATCH_SIZE", "0"), ("NORMALIZE_MP_CONTEXT", "fork"),
    ("NORMALIZE_BATCH_MAX_WAIT", "soon"),
])
def test_invalid_settings_fail_naming_the_setting(tmp_path: Path, setting: str, value: str) -> None:
    with pytest.raises(InvalidSetting, match=setting):
        make(tmp_path, **{setting: value})


def test_disabled(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured):
        make(tmp_path, NORMALIZE_ENABLED=False)


def test_workers_that_cannot_start_close_the_spider_once(tmp_path: Path) -> None:
    from types import SimpleNamespace

    crawler, pipeline, sink = make(tmp_path, NORMALIZE_WORKERS=1)
    closes: list[str] = []

    async def close_spider_async(reason: str) -> None:
        closes.append(reason)

    crawler.engine = SimpleNamespace(close_spider_async=close_spider_async)
    # What BatchNormalizer decides after START_ATTEMPTS dead fresh pools (tests/normalize/test_pool.py).
    pipeline.normalizer.unusable = "WorkerCrashed: normalisation workers cannot start"

    async def scenario() -> list:
        results = await run(pipeline, [TextItem(f"http://x/{i}", f"t{i}") for i in range(3)])
        await asyncio.sleep(0)  # let the close request run
        return results

    results = asyncio.run(scenario())
    sink.close()
    assert all(isinstance(r, DropItem) for r in results)
    assert closes == ["normalize_pool_failed"]
    records = [json.loads(line) for line in Path(sink.path).read_text().splitlines()]
    assert len(records) == 3 and "cannot start" in records[0]["error"]
