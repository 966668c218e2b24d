"""Streaming Parquet output: one dataset (a directory of part files) on any pyarrow filesystem.

Rows are validated as they arrive (:func:`~scraper.parquet.schema.row_validator`), buffered per
column and written one row group at a time, so memory does not grow with the crawl. A part is written
under a hidden temporary name (readers skip names starting with ``.``) and renamed into place when it
is closed — when it reaches ``part_max_rows`` / ``part_max_bytes``, or at the end — so a reader never
sees a truncated part, even after ``kill -9``. :meth:`DatasetWriter.finish` adds ``_manifest.json``
(and ``_SUCCESS`` for a complete crawl) so readers can tell a complete dataset from a partial one.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from scraper.parquet.s3 import s3_filesystem
from scraper.parquet.schema import columns_to_table, row_validator
from scraper.secrets import mask_url, redact

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"


def resolve_uri(uri: str, settings: Mapping[str, Any] | None = None) -> tuple[pafs.FileSystem, str]:
    """A filesystem and path for ``uri``: a local path (relative ones from the cwd) or any URI
    pyarrow understands (``file://``, ``s3://``, ...); ``s3://`` with Scrapy's ``AWS_*`` ``settings``
    (see :mod:`scraper.parquet.s3`)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        if uri.startswith("s3://"):
            return s3_filesystem(uri, settings)
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, ValueError) as exc:
        raise ValueError(f"cannot open {mask_url(uri)}: {redact(str(exc), uri)}") from None


class RowBuffer:
    """Validated rows of one schema, held as columns until they become a table."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._validate = row_validator(schema)
        self._columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.rows = 0

    def append(self, values: Iterable[Any]) -> None:
        row = list(values)
        self._validate(row)  # raises SchemaError naming the field; nothing is buffered then
        for column, value in zip(self._columns.values(), row, strict=True):
            column.append(value)
        self.rows += 1

    def take(self) -> dict[str, list[Any]]:
        """The buffered columns, leaving the buffer empty (cheap: no conversion)."""
        columns = self._columns
        self._columns = {name: [] for name in self.schema.names}
        self.rows = 0
        return columns

    def to_table(self, columns: dict[str, list[Any]]) -> pa.Table:
        return columns_to_table(columns, self.schema)


class PartWriteError(OSError):
    """Rows could not be written: ``lost`` of them (the failed part's and those not yet written)."""

    def __init__(self, lost: int, cause: Exception) -> None:
        super().__init__(f"{lost} row(s) could not be written: {cause}")
        self.lost = lost


@dataclass
class PartInfo:
    path: str
    rows: int
    bytes: int


class DatasetWriter:
    """Writes rows of one schema to ``directory`` as rotating, atomically renamed parts.

    ``append`` validates and buffers; when it returns True a row group is due: pass ``take()`` to
    ``write`` (which may run in another thread, one at a time, in order).
    """

    def __init__(self, fs: pafs.FileSystem, directory: str, schema: pa.Schema, *,
                 row_group_size: int = 10_000, compression: str = "zstd",
                 part_max_rows: int = 1_000_000, part_max_bytes: int = 256 * 2**20) -> None:
        self.fs = fs
        self.directory = directory.rstrip("/")
        self.schema = schema
        self.buffer = RowBuffer(schema)
        self.row_group_size = min(row_group_size, part_max_rows)
        self.compression = compression
        self.part_max_rows = part_max_rows
        self.part_max_bytes = part_max_bytes
        self.token = uuid.uuid4().hex[:12]  # concurrent writers to one directory never collide
        self.parts: list[PartInfo] = []
        # Two-phase publishing (the Redis scheduler's checkpoints): closed parts stay hidden until
        # their (hidden, final) moves are handed to publish() by whoever coordinates them.
        self.defer_publish = False
        self.unpublished: list[tuple[str, str]] = []
        self.row_groups = 0
        self.stranded = 0  # rows a failed compaction left in hidden parts
        self._writer: pq.ParquetWriter | None = None
        self._sink: pa.NativeFile | None = None
        self._part_rows = 0
        self._temp_path = ""
        self._dir_made = False  # made on the I/O thread, before the first write: the constructor does no I/O

    @property
    def rows_written(self) -> int:
        return sum(p.rows for p in self.parts) + self._part_rows

    def append(self, values: Iterable[Any]) -> bool:
        self.buffer.append(values)
        return self.buffer.rows >= self.row_group_size

    def take(self) -> dict[str, list[Any]]:
        return self.buffer.take()

    def write(self, columns: dict[str, list[Any]]) -> None:
        """Write rows as row group(s) (converting them to Arrow here), splitting them at part
        boundaries so no part exceeds ``part_max_rows``. Raises :class:`PartWriteError` if the
        filesystem fails: the open part is then removed, never published half-written."""
        table = self.buffer.to_table(columns)
        try:
            while table.num_rows:
                if self._writer is None:
                    self._open_part()
                assert self._writer is not None and self._sink is not None
                chunk = table.slice(0, self.part_max_rows - self._part_rows)
                self._writer.write_table(chunk, row_group_size=chunk.num_rows)
                table = table.slice(chunk.num_rows)
                self._part_rows += chunk.num_rows
                self.row_groups += 1
                if self._part_rows >= self.part_max_rows or self._sink.tell() >= self.part_max_bytes:
                    self._close_part()
        except (OSError, pa.ArrowException) as exc:
            raise self._abort_part(exc, table.num_rows) from exc

    def commit(self, columns: dict[str, list[Any]]) -> None:
        """Write ``columns`` (taken from the buffer on the caller's thread) and close the open part:
        everything written so far is in renamed, complete parts. The next write opens a new part."""
        self.write(columns)
        self._close_part()

    def checkpoint(self, columns: dict[str, list[Any]]) -> list[tuple[str, str]]:
        """:meth:`commit`, then hand over the moves that publish every part closed so far."""
        self.commit(columns)
        moves, self.unpublished = self.unpublished, []
        return moves

    def close(self) -> list[PartInfo]:
        """Write what is buffered and close the open part. Idempotent; :class:`PartWriteError` as
        :meth:`write`."""
        self.write(self.take())
        try:
            self._close_part()
        except (OSError, pa.ArrowException) as exc:
            raise self._abort_part(exc, 0) from exc
        return self.parts

    def compact(self) -> int:
        """Merge runs of consecutive small parts (time rollovers leave many) into parts of up to
        ``part_max_rows`` / ``part_max_bytes``, after :meth:`close`; the number of parts removed.

        Per run: the merged part is written hidden; the sources are hidden (renamed to ``.…compacting``);
        the merged part is renamed into place; the sources are deleted. A reader never sees a row twice,
        and a crash leaves the sources hidden, not lost. A reader listing the directory in the
        milliseconds between the last two renames sees fewer rows: the dataset is final at ``_SUCCESS``."""
        if self.defer_publish or self._writer is not None:
            return 0
        runs: list[list[PartInfo]] = [[]]
        for part in self.parts:
            run = runs[-1]
            if run and (sum(p.rows for p in run) + part.rows > self.part_max_rows
                        or sum(p.bytes for p in run) + part.bytes > self.part_max_bytes):
                runs.append(run := [])
            run.append(part)
        merged: list[PartInfo] = []
        for number, run in enumerate(runs):
            if len(run) == 1 or not self._write_merged(run):
                merged.extend(run)
                continue
            try:
                merged.append(self._swap(run))
            except OSError:  # a rename failed: the run's rows may be in hidden .compacting parts
                self.stranded = sum(part.rows for part in run)
                self.parts = merged + [part for later in runs[number + 1:] for part in later]
                raise
        removed = len(self.parts) - len(merged)
        self.parts = merged
        return removed

    def _merged_paths(self, run: list[PartInfo]) -> tuple[str, str]:
        """Named after the run's first part (``part-…-00003-m4.parquet``): file order stays row order."""
        name = run[0].path.rpartition("/")[2].removesuffix(".parquet") + f"-m{len(run)}.parquet"
        return f"{self.directory}/.{name}.inprogress", f"{self.directory}/{name}"

    def _write_merged(self, run: list[PartInfo]) -> bool:
        """Write the run's rows to a hidden part; False (nothing changed) if the filesystem refuses."""
        temp, _ = self._merged_paths(run)
        try:
            with self.fs.open_output_stream(temp) as sink:
                with pq.ParquetWriter(sink, self.schema, compression=self.compression) as writer:
                    for part in run:
                        with self.fs.open_input_file(part.path) as source:
                            for batch in pq.ParquetFile(source).iter_batches(batch_size=self.row_group_size):
                                writer.write_table(pa.Table.from_batches([batch], self.schema))
        except (OSError, pa.ArrowException) as exc:
            logger.warning("Parquet: could not compact %d parts of %s (%s); they stay as they are",
                           len(run), mask_url(self.directory), exc)
            try:
                self.fs.delete_file(temp)
            except OSError:
                pass
            return False
        return True

    def _swap(self, run: list[PartInfo]) -> PartInfo:
        temp, final = self._merged_paths(run)
        size = self.fs.get_file_info(temp).size
        hidden = [f"{self.directory}/.{part.path.rpartition('/')[2]}.compacting" for part in run]
        for part, away in zip(run, hidden, strict=True):
            self.fs.move(part.path, away)
        self.fs.move(temp, final)
        for away in hidden:
            self.fs.delete_file(away)
        return PartInfo(final, sum(part.rows for part in run), size)

    def finish(self, complete: bool, extra: Mapping[str, Any], *, earlier_runs: bool = False) -> None:
        """Write ``_manifest.json`` (and ``_SUCCESS`` when ``complete``) after :meth:`close`. With
        ``earlier_runs`` (a resumed crawl continuing its dataset) it also lists the parts already there."""
        parts = (self._earlier_parts() if earlier_runs else []) + self.parts
        manifest = {
            "complete": complete,
            "writer": self.token,
            "rows": sum(p.rows for p in parts),
            "parts": [{**asdict(p), "path": p.path.rsplit("/", 1)[-1]} for p in parts],
            "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.schema],
            **extra,
        }
        self._write_atomically(f"{self.directory}/{MANIFEST}",
                               json.dumps(manifest, indent=2, default=str).encode())
        if complete:
            self._write_atomically(f"{self.directory}/{SUCCESS}", b"")

    def _earlier_parts(self) -> list[PartInfo]:
        ours = {p.path for p in self.parts}
        found = self.fs.get_file_info(pafs.FileSelector(self.directory, allow_not_found=True))
        earlier = []
        for info in sorted(found, key=lambda i: i.path):
            name = info.path.rpartition("/")[2]
            if info.type == pafs.FileType.File and name.startswith("part-") and name.endswith(".parquet") \
                    and info.path not in ours:
                with self.fs.open_input_file(info.path) as source:
                    earlier.append(PartInfo(info.path, pq.ParquetFile(source).metadata.num_rows, info.size))
        return earlier

    def _make_dir(self) -> None:
        if not self._dir_made:
            self.fs.create_dir(self.directory, recursive=True)
            self._dir_made = True

    def _open_part(self) -> None:
        self._make_dir()
        name = f"part-{self.token}-{len(self.parts):05d}.parquet"
        self._temp_path = f"{self.directory}/.{name}.inprogress"
        self._sink = self.fs.open_output_stream(self._temp_path)
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression=self.compression)

    def _close_part(self) -> None:
        if self._writer is None:
            return
        assert self._sink is not None
        self._writer.close()
        size = self._sink.tell()
        self._sink.close()
        final = f"{self.directory}/part-{self.token}-{len(self.parts):05d}.parquet"
        if self.defer_publish:
            self.unpublished.append((self._temp_path, final))
        else:
            self.fs.move(self._temp_path, final)
        self.parts.append(PartInfo(final, self._part_rows, size))
        self._writer, self._sink, self._part_rows = None, None, 0

    def _abort_part(self, exc: Exception, unwritten: int) -> PartWriteError:
        """Remove the part that failed (its footer will never be written) and say what was lost."""
        lost = self._part_rows + unwritten
        writer, sink, temp = self._writer, self._sink, self._temp_path
        self._writer, self._sink, self._part_rows, self._temp_path = None, None, 0, ""
        for step in (writer and writer.close, sink and sink.close, temp and (lambda: self.fs.delete_file(temp))):
            try:
                if step:
                    step()
            except (OSError, pa.ArrowException):
                pass  # the filesystem that failed the write may fail these too: nothing more to do
        if writer is not None:
            writer.is_open = False  # (else it tries the footer again when collected)
        return PartWriteError(lost, exc)

    def _write_atomically(self, path: str, data: bytes) -> None:
        self._make_dir()
        directory, _, name = path.rpartition("/")
        temp = f"{directory}/.{name}.{self.token}.inprogress"  # writers sharing a directory never collide
        with self.fs.open_output_stream(temp) as stream:
            stream.write(data)
        self.fs.move(temp, path)


def probe(fs: pafs.FileSystem, directory: str) -> None:
    """Make ``directory`` and write, then remove, a hidden file in it: raises the filesystem's error
    if this crawl could not write its output there."""
    fs.create_dir(directory, recursive=True)
    path = f"{directory.rstrip('/')}/.probe-{uuid.uuid4().hex[:12]}"
    with fs.open_output_stream(path) as stream:
        stream.write(b"probe")
    fs.delete_file(path)


def stored_urls(fs: pafs.FileSystem, directory: str) -> set[str]:
    """The ``url`` column of the dataset's visible parts (empty if it has none, or no such column)."""
    try:
        import pyarrow.dataset as ds  # (only here: 55 ms of imports a crawl that writes does not need)

        dataset = ds.dataset(directory, filesystem=fs, format="parquet")
        if "url" not in dataset.schema.names:
            return set()
        return set(dataset.to_table(columns=["url"]).column("url").to_pylist())
    except (OSError, pa.ArrowException):
        return set()


def publish(fs: pafs.FileSystem, moves: Iterable[Sequence[str]]) -> bool:
    """Rename closed hidden parts into place. Idempotent: a part already in place counts as published.
    False, having moved nothing, if a part is in neither place (e.g. on another machine's disk)."""
    pending = []
    for hidden, final in moves:
        if fs.get_file_info(hidden).type != pafs.FileType.NotFound:
            pending.append((hidden, final))
        elif fs.get_file_info(final).type == pafs.FileType.NotFound:
            return False
    for hidden, final in pending:
        fs.move(hidden, final)
    return True
