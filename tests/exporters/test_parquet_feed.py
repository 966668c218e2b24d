from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from localsite.process import LocalSite
from tests.helpers import run_crawl


def test_dash_o_parquet_writes_the_same_typed_schema(tmp_path: Path) -> None:
    target = tmp_path / "books.parquet"
    with LocalSite(books=60, seed=5) as site:
        result = run_crawl("books", tmp_path / "dataset", "-a", f"start_url={site.url}", "-O", str(target))
    assert result.returncode == 0, result.log[-2000:]
    assert f"data: {tmp_path / 'dataset'}, feed {target}" in result.log  # the summary names every output
    feed = pq.read_table(target)
    dataset = pq.read_table(next((tmp_path / "dataset").glob("part-*.parquet")))
    assert feed.num_rows == dataset.num_rows == 60
    assert feed.schema.field("price_incl_tax").type == pa.decimal128(12, 2)
    assert feed.schema.remove_metadata() == dataset.schema.remove_metadata()
    assert sorted(feed.column("upc").to_pylist()) == sorted(dataset.column("upc").to_pylist())
    assert feed.column("content_hash").null_count == 0  # feeds see normalised items
