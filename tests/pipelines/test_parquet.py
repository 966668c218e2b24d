from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from scrapy import Spider
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.test import get_crawler

from scraper.config import InvalidSetting
from scraper.output import DEFAULT_PARQUET_URI, format_uri, item_type_name
from scraper.parquet.schema import arrow
from scraper.pipelines.parquet import ParquetPipeline
from scraper.signals import dead_letter


@dataclass
class ThingItem:
    name: str


@dataclass
class OtherThingItem:
    size: int


class DemoSpider(Spider):
    name = "demo"
    _job = "job42"


def make_pipeline(**settings) -> ParquetPipeline:
    crawler = get_crawler(DemoSpider, settings_dict=settings)
    crawler.spider = crawler._create_spider()
    return ParquetPipeline.from_crawler(crawler)


def test_item_type_names() -> None:
    assert item_type_name(ThingItem) == "thing"
    assert item_type_name(OtherThingItem) == "other_thing"


def test_uri_placeholders_like_feed_uris() -> None:
    when = datetime(2026, 11, 21, 10, 5, 7, 123, tzinfo=UTC)
    uri = format_uri("out/%(name)s/%(_job)s/%(time)s/%(item)s", DemoSpider(), when, "book")
    assert uri == "out/demo/job42/2026-11-21T10-05-07/book"


def test_the_default_location_is_unique_per_crawl_even_in_the_same_second() -> None:
    when = datetime(2026, 11, 21, 10, 5, 7, tzinfo=UTC)
    first, second = Spider("demo"), Spider("demo")
    a, b = (format_uri(DEFAULT_PARQUET_URI, spider, when, "book") for spider in (first, second))
    assert a != b and a.startswith("data/demo/2026-11-21T10-05-07-")
    assert format_uri(DEFAULT_PARQUET_URI, first, when, "book") == a  # one crawl, one place
    assert format_uri(DEFAULT_PARQUET_URI, DemoSpider(), when, "book") == "data/demo/2026-11-21T10-05-07-job42/"


@pytest.mark.parametrize("setting,value", [
    ("PARQUET_ROW_GROUP_SIZE", "0"), ("PARQUET_ROW_GROUP_SIZE", "many"),
    ("PARQUET_COMPRESSION", "rar"),
])
def test_invalid_settings_name_the_setting(tmp_path: Path, setting: str, value: str) -> None:
    with pytest.raises(InvalidSetting, match=setting):
        make_pipeline(PARQUET_URI=str(tmp_path), **{setting: value})


def test_empty_uri_disables(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured):
        make_pipeline(PARQUET_URI="")


def test_unknown_placeholder_fails_at_open(tmp_path: Path) -> None:
    pipeline = make_pipeline(PARQUET_URI=str(tmp_path / "%(nope)s"))
    with pytest.raises(InvalidSetting, match="PARQUET_URI"):
        pipeline.open_spider()


async def feed(pipeline: ParquetPipeline, items: list, reason: str = "finished") -> None:
    pipeline.open_spider()
    for item in items:
        await pipeline.process_item(item)
        pipeline.crawler.stats.inc_value("item_scraped_count")  # (the engine's count)
    await pipeline.close_spider()
    pipeline.spider_closed(reason)


def test_one_dataset_per_item_type(tmp_path: Path) -> None:
    pipeline = make_pipeline(PARQUET_URI=str(tmp_path / "%(item)s"), PARQUET_ROW_GROUP_SIZE=2)
    items = [x for i in range(5) for x in (ThingItem(f"n{i}"), OtherThingItem(i))]
    asyncio.run(feed(pipeline, items))
    assert ds.dataset(tmp_path / "thing").to_table().column("name").to_pylist() == [f"n{i}" for i in range(5)]
    assert ds.dataset(tmp_path / "other_thing").count_rows() == 5
    assert pipeline.crawler.stats.get_value("parquet/rows") == 10


def test_two_item_types_need_the_item_placeholder(tmp_path: Path) -> None:
    pipeline = make_pipeline(PARQUET_URI=str(tmp_path))
    with pytest.raises(InvalidSetting, match=r"%\(item\)s placeholder"):
        asyncio.run(feed(pipeline, [ThingItem("a"), OtherThingItem(1)]))


def test_manifest_and_success_marker(tmp_path: Path) -> None:
    pipeline = make_pipeline(PARQUET_URI=str(tmp_path), PARQUET_ROW_GROUP_SIZE=3, PARQUET_PART_MAX_ROWS=4)
    asyncio.run(feed(pipeline, [ThingItem(f"n{i}") for i in range(10)]))
    manifest = json.loads((tmp_path / "_manifest.json").read_text())
    assert manifest["complete"] is True and manifest["finish_reason"] == "finished"
    assert manifest["rows"] == 10 and sum(p["rows"] for p in manifest["parts"]) == 10
    assert len(manifest["parts"]) == 3  # rotated at 4 rows (row groups shrink to fit)
    assert manifest["schema"] == [{"name": "name", "type": "string", "nullable": False}]
    assert manifest["stats"]["parquet/rows"] == 10
    assert (tmp_path / "_SUCCESS").exists()
    assert ds.dataset(tmp_path).count_rows() == 10  # the underscore files are not data


def test_partial_crawl_has_manifest_but_no_success(tmp_path: Path) -> None:
    pipeline = make_pipeline(PARQUET_URI=str(tmp_path))
    asyncio.run(feed(pipeline, [ThingItem("a")], reason="shutdown"))
    assert json.loads((tmp_path / "_manifest.json").read_text())["complete"] is False
    assert not (tmp_path / "_SUCCESS").exists()


@dataclass
class PricedItem:
    url: str
    price: Decimal = field(metadata=arrow(pa.decimal128(8, 2)))


def test_item_that_does_not_fit_is_refused_loudly_and_dead_lettered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = make_pipeline(PARQUET_URI=str(tmp_path))
    letters: list[dict] = []

    def collect(record: dict) -> None:
        letters.append(record)

    pipeline.crawler.signals.connect(collect, signal=dead_letter)  # receivers are held weakly
    items = [PricedItem("a", Decimal("1.00")), PricedItem("b", 2.5), PricedItem("c", Decimal("3.00"))]

    async def scenario() -> list:
        pipeline.open_spider()
        results = [await pipeline.process_item(items[0])]
        with pytest.raises(DropItem, match=r"PricedItem\.price"):
            await pipeline.process_item(items[1])
        results.append(await pipeline.process_item(items[2]))
        await pipeline.close_spider()
        return results

    asyncio.run(scenario())
    assert [r["url"] for r in letters] == ["b"] and letters[0]["field"] == "price"
    assert "PricedItem.price: value 2.5 does not fit" in caplog.text
    assert pipeline.crawler.stats.get_value("parquet/schema_errors") == 1
    assert ds.dataset(tmp_path).to_table().column("url").to_pylist() == ["a", "c"]
