from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from scraper.parquet.dataset import DatasetWriter, publish, resolve_uri
from scraper.parquet.schema import arrow_schema


@dataclass
class Row:
    n: int
    text: str


def test_streams_row_groups_and_renames_atomically(tmp_path: Path) -> None:
    writer = DatasetWriter(pafs.LocalFileSystem(), str(tmp_path), arrow_schema(Row), row_group_size=3)
    for i in range(10):
        if writer.append((i, f"t{i}")):
            writer.write(writer.take())
    # 9 rows are already on disk in 3 row groups, but only under a hidden temporary name
    visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert visible == [] and writer.row_groups == 3
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 0
    parts = writer.close()
    assert [p.rows for p in parts] == [10]
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(parts[0].path)]
    assert pq.ParquetFile(parts[0].path).metadata.num_row_groups == 4
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert table.column("n").to_pylist() == list(range(10))
    assert pq.ParquetFile(parts[0].path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_two_writers_share_a_directory_without_collisions(tmp_path: Path) -> None:
    fs, schema = pafs.LocalFileSystem(), arrow_schema(Row)
    writers = [DatasetWriter(fs, str(tmp_path), schema) for _ in range(2)]
    for w, start in zip(writers, (0, 100), strict=True):
        w.append((start, "x"))
    for w in writers:
        w.close()
    assert sorted(ds.dataset(tmp_path).to_table().column("n").to_pylist()) == [0, 100]


def test_writers_sharing_a_directory_finish_at_the_same_time(tmp_path: Path) -> None:
    """Redis workers writing one dataset close together: their manifests must not share a temp file."""
    fs, schema = pafs.LocalFileSystem(), arrow_schema(Row)
    writers = [DatasetWriter(fs, str(tmp_path), schema) for _ in range(2)]
    start = threading.Barrier(2)

    def finish_many(writer: DatasetWriter) -> None:
        start.wait()
        for _ in range(200):
            writer.finish(complete=True, extra={})

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(finish_many, w) for w in writers]:
            done.result()  # raised FileNotFoundError when both renamed the same ._manifest.json temp
    assert json.loads((tmp_path / "_manifest.json").read_text())["writer"] in {w.token for w in writers}


def test_deferred_parts_stay_hidden_until_published(tmp_path: Path) -> None:
    fs = pafs.LocalFileSystem()
    writer = DatasetWriter(fs, str(tmp_path), arrow_schema(Row), row_group_size=2, part_max_rows=2)
    writer.defer_publish = True
    for i in range(5):
        if writer.append((i, "x")):
            writer.write(writer.take())  # parts that fill up rotate, but stay hidden
    moves = writer.checkpoint(writer.take())
    assert len(moves) == 3 and writer.unpublished == []
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 0
    assert publish(fs, moves) and publish(fs, moves)  # idempotent: a retry, or another worker's
    assert sorted(ds.dataset(tmp_path, format="parquet").to_table().column("n").to_pylist()) == list(range(5))


def test_publishing_parts_that_are_nowhere_moves_nothing(tmp_path: Path) -> None:
    fs = pafs.LocalFileSystem()
    writer = DatasetWriter(fs, str(tmp_path), arrow_schema(Row))
    writer.defer_publish = True
    writer.append((1, "x"))
    moves = writer.checkpoint(writer.take())
    missing = [[str(tmp_path / ".gone.inprogress"), str(tmp_path / "gone.parquet")]]
    assert not publish(fs, [*moves, *missing])  # e.g. a dead worker's parts on another machine
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 0


def test_resolve_uri(tmp_path: Path) -> None:
    fs, path = resolve_uri("relative/dir")
    assert isinstance(fs, pafs.LocalFileSystem) and path == os.path.abspath("relative/dir")
    fs, path = resolve_uri(f"file://{tmp_path}")
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path)
    with pytest.raises(ValueError, match=r"user:\*\*\*@") as info:
        resolve_uri("nosuchscheme://user:hunter2@host/bucket")
    assert "hunter2" not in str(info.value)


def rolled(tmp_path: Path, commits: int, rows_each: int, **options: int) -> DatasetWriter:
    """A writer whose parts were closed ``commits`` times (as time rollovers do), then closed."""
    writer = DatasetWriter(pafs.LocalFileSystem(), str(tmp_path), arrow_schema(Row), **options)
    for c in range(commits):
        for i in range(rows_each):
            writer.append((c * rows_each + i, "t"))
        writer.commit(writer.take())
    writer.close()
    return writer


def test_compaction_merges_small_parts_in_order_and_keeps_every_row_once(tmp_path: Path) -> None:
    writer = rolled(tmp_path, commits=7, rows_each=10, part_max_rows=30)
    assert len(writer.parts) == 7
    assert writer.compact() == 4  # 7 parts of 10 -> 30, 30, 10
    assert [p.rows for p in writer.parts] == [30, 30, 10]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(os.path.basename(p.path) for p in writer.parts)
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert table.column("n").to_pylist() == list(range(70))
    assert writer.compact() == 0  # idempotent


class RefusingMerges:
    """A filesystem that refuses to create merged parts (a full disk at the close), else local."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()

    def open_output_stream(self, path: str) -> pafs.NativeFile:
        if "-m" in path.rpartition("/")[2]:
            raise OSError(28, "No space left on device")
        return self.local.open_output_stream(path)

    def __getattr__(self, name: str):
        return getattr(self.local, name)


def test_compaction_that_cannot_write_changes_nothing(tmp_path: Path) -> None:
    writer = rolled(tmp_path, commits=3, rows_each=5)
    before = sorted(p.name for p in tmp_path.iterdir())
    writer.fs = RefusingMerges()
    assert writer.compact() == 0 and len(writer.parts) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 15
