"""Item pipeline writing each item type to a typed, streaming, crash-safe Parquet dataset: row groups are
converted and written by one background thread so the reactor only validates and buffers, and a value
the schema cannot hold fails its page, never the crawl. Settings and guarantees: docs/durability.md."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured

from scraper import signals as our_signals
from scraper.config import InvalidSetting, get_bool, get_choice, get_float, get_int
from scraper.crawling import spider_of, stats_of
from scraper.outcome import Thresholds, judge
from scraper.output import crawl_time, format_uri, item_type_name, parquet_template, resumed
from scraper.parquet.dataset import DatasetWriter, PartWriteError, probe, publish, resolve_uri
from scraper.parquet.schema import SchemaError, arrow_schema
from scraper.pipelines import close_crawl
from scraper.secrets import mask_url, redact
from scraper.timers import Repeating, every, stop

logger = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")
DEFAULT_ROW_GROUP_SIZE = 10_000
DEFAULT_COMPRESSION = "zstd"
DEFAULT_PART_MAX_ROWS = 1_000_000
DEFAULT_PART_MAX_BYTES = 256 * 2**20
DEFAULT_ROLLOVER_SECONDS = 60.0


class ParquetPipeline:
    def __init__(self, crawler: Crawler, uri: str, *, row_group_size: int, compression: str,
                 part_max_rows: int, part_max_bytes: int, rollover_seconds: float = 0.0,
                 compact: bool = False) -> None:
        self.crawler = crawler
        self.uri = uri
        self.rollover_seconds = rollover_seconds
        self.compact = compact
        self._dirty_since: dict[type, float] = {}  # item type -> when its oldest unpublished row arrived
        self._rollover: Repeating | None = None
        self._rolling: asyncio.Future[None] | None = None
        self.writer_options: dict[str, Any] = dict(row_group_size=row_group_size, compression=compression,
                                   part_max_rows=part_max_rows, part_max_bytes=part_max_bytes)
        self.writers: dict[type, DatasetWriter] = {}
        self._locations: dict[str, type] = {}
        self._io = ThreadPoolExecutor(1, thread_name_prefix="parquet")  # one thread: row groups stay in order
        self._pending: set[asyncio.Future[Any]] = set()
        self._write_failed = False
        self._defer_publish = False
        self.thresholds = Thresholds.from_settings(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ParquetPipeline:
        settings = crawler.settings
        uri = parquet_template(crawler)
        if not uri:
            raise NotConfigured("PARQUET_URI is empty")
        pipeline = cls(
            crawler, uri,
            row_group_size=get_int(settings, "PARQUET_ROW_GROUP_SIZE", DEFAULT_ROW_GROUP_SIZE, minimum=1),
            compression=get_choice(settings, "PARQUET_COMPRESSION", DEFAULT_COMPRESSION, COMPRESSIONS),
            part_max_rows=get_int(settings, "PARQUET_PART_MAX_ROWS", DEFAULT_PART_MAX_ROWS, minimum=1),
            part_max_bytes=get_int(settings, "PARQUET_PART_MAX_BYTES", DEFAULT_PART_MAX_BYTES,
                                   minimum=1024),
            rollover_seconds=get_float(settings, "PARQUET_ROLLOVER_SECONDS", DEFAULT_ROLLOVER_SECONDS,
                                       minimum=0),
            compact=get_bool(settings, "PARQUET_COMPACT", False),
        )
        if getattr(crawler, "spider", None) is not None:  # (None: the pipeline built outside a crawl)
            pipeline.probe()
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(pipeline.checkpoint, signal=our_signals.checkpoint)
        crawler.signals.connect(pipeline.hold_publication, signal=our_signals.hold_publication)
        crawler.signals.connect(pipeline.publish, signal=our_signals.publish)
        return pipeline

    def open_spider(self) -> None:
        try:
            format_uri(self.uri, self.crawler.spider, crawl_time(self.crawler), "item")
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidSetting("PARQUET_URI", mask_url(self.uri),
                                 f"a path or URI whose placeholders are known ({exc})") from None
        if self.rollover_seconds:
            self._rollover = every(min(max(self.rollover_seconds / 4, 0.05), 5.0), self._roll_over_soon, now=False)

    def _roll_over_soon(self) -> None:
        if self._rolling is None or self._rolling.done():
            self._rolling = asyncio.ensure_future(self._roll_over())

    async def _roll_over(self) -> None:
        """Publish the rows that have waited ``PARQUET_ROLLOVER_SECONDS``: close their part (and
        write what is buffered). Under Redis, checkpoints publish instead (they also ack leases)."""
        if self._defer_publish:
            return
        now = time.monotonic()
        for item_cls, since in list(self._dirty_since.items()):
            if now - since < self.rollover_seconds:
                continue
            del self._dirty_since[item_cls]
            writer = self.writers[item_cls]
            try:
                await self._run(writer.commit, writer.take())
            except PartWriteError as exc:
                self._lost(writer, exc)
            self.crawler.stats.inc_value("parquet/rollovers")

    def probe(self) -> None:
        """Fail at start-up, before the engine opens, if the output cannot be written (a remote store
        within its timeouts: see scraper/parquet/s3.py). Runs once, before the reactor has anything
        to do."""
        head, placeholder, _ = self.uri.partition("%(item)s")  # per item type: probe the directory above
        try:
            location = format_uri((head.rpartition("/")[0] or ".") if placeholder else head,
                                  self.crawler.spider, crawl_time(self.crawler), "")
        except (KeyError, ValueError, TypeError):
            return  # a placeholder error: open_spider names it
        try:
            probe(*resolve_uri(location, self.crawler.settings))
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise InvalidSetting("PARQUET_URI", mask_url(self.uri),
                                 f"a location this crawl can write ({redact(str(exc), self.uri)})") from None

    async def process_item(self, item: Any) -> Any:
        item_cls = type(item)
        writer = self.writers.get(item_cls) or self._open_writer(item_cls)
        adapter = ItemAdapter(item)
        try:
            due = writer.append(adapter.get(name) for name in writer.schema.names)
        except SchemaError as exc:
            self._refuse(adapter, exc)
        self._dirty_since.setdefault(item_cls, time.monotonic())
        if due:
            try:
                await self._write(writer, writer.take())
            except PartWriteError as exc:
                self._lost(writer, exc)
        return item

    async def close_spider(self) -> None:
        stop(self._rollover)
        if self._rolling is not None:
            await self._rolling
        loop = asyncio.get_running_loop()
        if self._pending:
            await asyncio.gather(*self._pending)
        stats = stats_of(self.crawler)
        for item_cls, writer in self.writers.items():
            try:
                await loop.run_in_executor(self._io, writer.close)
            except PartWriteError as exc:
                self._lost(writer, exc)
            if self.compact and not self._write_failed:
                try:
                    stats.inc_value("parquet/compacted_parts", await loop.run_in_executor(self._io, writer.compact))
                except OSError as exc:  # a rename failed: the rows are in hidden .compacting parts
                    logger.error("Parquet: compaction of %s failed (%s); hidden .compacting parts hold "
                                 "rows readers no longer see", self._display(writer), exc)
                    stats.inc_value("parquet/lost_rows", writer.stranded)
            parts = writer.parts
            rows = sum(p.rows for p in parts)
            stats.inc_value("parquet/rows", rows)
            stats.inc_value("parquet/parts", len(parts))
            stats.inc_value("parquet/row_groups", writer.row_groups)
            logger.info("Parquet: %s %s rows in %s part(s) at %s", rows, item_type_name(item_cls),
                        len(parts), self._display(writer))

    def hold_publication(self) -> None:
        """Closed parts stay hidden until :meth:`publish` (the Redis scheduler acks their leases in
        the same step; see :mod:`scraper.distributed.scheduler`)."""
        self._defer_publish = True
        for writer in self.writers.values():
            writer.defer_publish = True

    async def checkpoint(self) -> list[list[str]]:
        """Make every row received so far durable: close the open parts, and return the moves that
        publish them (see :data:`scraper.signals.checkpoint`)."""
        moves: list[list[str]] = []
        for writer in self.writers.values():
            # Queued behind any pending write on the one I/O thread, so it closes a part holding them.
            moves.extend(list(move) for move in await self._run(writer.checkpoint, writer.take()))
        return moves

    async def publish(self, moves: list[list[str]]) -> bool:
        """Rename hidden parts into place (ours, or a dead worker's in a shared dataset)."""
        return await self._run(publish, self._filesystem(), moves)

    def _filesystem(self) -> pafs.FileSystem:
        for writer in self.writers.values():
            return writer.fs
        location = format_uri(self.uri, self.crawler.spider, crawl_time(self.crawler), "item")
        return resolve_uri(location, self.crawler.settings)[0]

    def spider_closed(self, reason: str) -> None:
        """Manifests go last, when the final stats (finish reason, counts) are known."""
        stats = stats_of(self.crawler)
        final = stats.get_stats()
        outcome = judge(final, reason, self.thresholds)
        for item_cls, writer in self.writers.items():
            try:
                writer.finish(complete=outcome.complete, extra={
                    "finish_reason": reason, "exit_code": outcome.code, "spider": spider_of(self.crawler).name,
                    "item_type": item_type_name(item_cls), "rows_lost": final.get("parquet/lost_rows", 0),
                    "dead_lettered": outcome.dead_letters, "malformed": final.get("pages/malformed", 0),
                    "stats": final,
                }, earlier_runs=resumed(self.crawler.settings))
            except (OSError, pa.ArrowException) as exc:
                logger.error("Parquet: could not write the manifest of %s: %s", self._display(writer), exc)
        self._io.shutdown(wait=True)

    async def _write(self, writer: DatasetWriter, columns: dict[str, list[Any]]) -> None:
        await self._run(writer.write, columns)

    async def _run(self, method: Any, *args: Any) -> Any:
        """Run a writer method on the one I/O thread (in submission order), tracked until done."""
        future = asyncio.get_running_loop().run_in_executor(self._io, method, *args)
        self._pending.add(future)
        try:
            return await future
        finally:
            self._pending.discard(future)

    def _lost(self, writer: DatasetWriter, exc: PartWriteError) -> None:
        """Rows the filesystem refused: counted, and the crawl stops (the next write would fail too)."""
        stats = stats_of(self.crawler)
        stats.inc_value("parquet/lost_rows", exc.lost)
        logger.error("Parquet: %s at %s; the crawl stops", exc, self._display(writer))
        if not self._write_failed:
            self._write_failed = True
            close_crawl(self.crawler, "parquet_write_error")

    def _refuse(self, adapter: ItemAdapter, exc: SchemaError) -> None:
        stats = stats_of(self.crawler)
        stats.inc_value("parquet/schema_errors")
        stats.inc_value("pages/malformed")  # its page held a value the dataset cannot: that page fails
        stats.inc_value(f"pages/malformed/{exc.field}")
        logger.warning("Dropped malformed item from %s: %s (dead-lettered)", adapter.get("url"), exc)
        self.crawler.signals.send_catch_log(our_signals.dead_letter, record={
            "kind": "item", "reason": "schema_error", "url": adapter.get("url"),
            "error": str(exc), "field": exc.field, "item": adapter.asdict(),
        })
        raise DropItem(f"schema error: {exc}")

    def _open_writer(self, item_cls: type) -> DatasetWriter:
        location = format_uri(self.uri, self.crawler.spider, crawl_time(self.crawler),
                              item_type_name(item_cls))
        if location in self._locations:
            other = self._locations[location].__name__
            raise InvalidSetting("PARQUET_URI", mask_url(self.uri),
                                 f"a %(item)s placeholder: {other} and {item_cls.__name__} items would "
                                 "share one dataset directory")
        fs, path = resolve_uri(location, self.crawler.settings)
        writer = DatasetWriter(fs, path, arrow_schema(item_cls), **self.writer_options)
        writer.defer_publish = self._defer_publish
        self._locations[location] = item_cls
        self.writers[item_cls] = writer
        logger.info("Parquet: writing %s items to %s", item_type_name(item_cls), self._display(writer))
        stats = self.crawler.stats
        if stats is not None:
            stats.set_value(f"parquet/dataset/{item_type_name(item_cls)}", self._display(writer))
        return writer

    @staticmethod
    def _display(writer: DatasetWriter) -> str:
        if isinstance(writer.fs, pafs.LocalFileSystem):
            return writer.directory
        return mask_url(f"{writer.fs.type_name}://{writer.directory}")
