"""``-O out.parquet``: a Scrapy feed exporter sharing the pipeline's schema and conversion code.

The schema comes from the first item's class (its declaration, as for the pipeline); every later
item must be of the same class. Rows are streamed in row groups of :data:`ROW_GROUP_SIZE`. A feed
with no items has no schema and so writes no Parquet file content.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from itemadapter import ItemAdapter
from scrapy.exporters import BaseItemExporter

from scraper.parquet.dataset import RowBuffer
from scraper.parquet.schema import SchemaError, arrow_schema

ROW_GROUP_SIZE = 10_000


class ParquetItemExporter(BaseItemExporter):
    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        kwargs.pop("compression", None)
        super().__init__(dont_fail=True, **kwargs)
        self.file = file
        self.compression = "zstd"
        self._item_cls: type | None = None
        self._buffer: RowBuffer | None = None
        self._writer: pq.ParquetWriter | None = None

    def export_item(self, item: Any) -> None:
        if self._buffer is None:
            self._item_cls = type(item)
            schema = arrow_schema(self._item_cls)  # type: ignore[arg-type]  # (a class is hashable)
            self._buffer = RowBuffer(schema)
            self._writer = pq.ParquetWriter(pa.PythonFile(self.file, mode="w"), schema,
                                            compression=self.compression)
        elif type(item) is not self._item_cls:
            raise SchemaError(type(item).__name__, "*", f"a Parquet feed holds one item type; this "
                              f"one started with {getattr(self._item_cls, '__name__', '?')}")
        adapter = ItemAdapter(item)
        self._buffer.append(adapter.get(name) for name in self._buffer.schema.names)
        if self._buffer.rows >= ROW_GROUP_SIZE:
            self._flush()

    def finish_exporting(self) -> None:
        if self._writer is not None:
            self._flush()
            self._writer.close()

    def _flush(self) -> None:
        assert self._buffer is not None and self._writer is not None
        if self._buffer.rows:
            self._writer.write_table(self._buffer.to_table(self._buffer.take()))
