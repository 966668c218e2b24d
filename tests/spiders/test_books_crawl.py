"""``scrapy crawl books`` end to end against the local site, in a subprocess, like a user runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from localsite.faults import is_malformed
from localsite.process import LocalSite
from scraper.items import BookItem
from scraper.normalize.books import normalize_book
from scraper.parquet.schema import arrow_schema
from tests.helpers import TOLERATE_BAD_PAGES, CrawlResult, run_crawl, stat


def assert_clean_log(result: CrawlResult) -> None:
    assert result.returncode == 0, result.log[-3000:]
    for marker in ("Traceback", "DeprecationWarning", "Deprecated", "ERROR"):
        assert marker not in result.log, marker


@pytest.fixture(scope="module")
def full_crawl(books_site: LocalSite, tmp_path_factory: pytest.TempPathFactory) -> CrawlResult:
    out = tmp_path_factory.mktemp("books") / "dataset"
    started = datetime.now(UTC)
    books_site.reset()  # the site is shared by the session: count only this crawl's requests
    result = run_crawl("books", out, "-a", f"start_url={books_site.url}index.html")
    result.started = started  # type: ignore[attr-defined]
    result.paths = books_site.stats(paths=True)["paths"]  # type: ignore[attr-defined]
    return result


def test_every_book_exactly_once_every_field_exact(full_crawl: CrawlResult, books_site: LocalSite) -> None:
    assert_clean_log(full_crawl)
    rows = full_crawl.rows()
    assert len(rows) == 1000
    expected = {}
    for book in books_site.catalog:
        record = book.expected_item(books_site.url)
        expected[book.path] = {**record, **normalize_book(record)}
    by_url = {}
    for row in rows:
        scraped_at = row.pop("scraped_at")
        assert scraped_at.tzinfo is not None and scraped_at >= full_crawl.started.replace(microsecond=0)
        by_url[row["url"]] = row
    assert len(by_url) == 1000
    for url, row in by_url.items():
        assert row == expected[url.removeprefix(books_site.url)], url
    assert sum(r["series"] is not None for r in rows) > 50


def test_complete_dataset_is_marked(full_crawl: CrawlResult) -> None:
    manifest = json.loads((full_crawl.output / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 1000 and manifest["item_type"] == "book"
    assert (full_crawl.output / "_SUCCESS").exists()
    assert "Normalisation: 2 forkserver worker(s)" in full_crawl.log or "worker(s)" in full_crawl.log
    assert stat(full_crawl, "normalize/items") == 1000


def test_dataset_types_are_exact(full_crawl: CrawlResult) -> None:
    dataset = ds.dataset(full_crawl.output, format="parquet")
    assert dataset.schema.remove_metadata() == arrow_schema(BookItem).remove_metadata()
    assert dataset.schema.field("price_incl_tax").type == pa.decimal128(12, 2)
    assert dataset.schema.field("scraped_at").type == pa.timestamp("us", tz="UTC")
    data_files = [p for p in full_crawl.output.iterdir() if not p.name.startswith("_")]
    assert data_files and all(p.name.startswith("part-") and p.suffix == ".parquet" for p in data_files)


def test_follows_pager_and_products_only(full_crawl: CrawlResult) -> None:
    paths = full_crawl.paths  # type: ignore[attr-defined]
    listing = [p for p in paths if p.startswith("catalogue/page-")]
    assert len(listing) == 49 and all(paths[p] == 1 for p in listing)  # page-2 .. page-50, once each
    products = [p for p in paths if p.endswith("/index.html") and "/category/" not in p]
    assert len(products) == 1000 and all(paths[p] == 1 for p in products)
    assert "Parquet: 1000 book rows in 1 part(s)" in full_crawl.log
    assert "Remote control" not in full_crawl.log and "Telnet console" not in full_crawl.log


def dead_letters(out: Path) -> list[dict]:
    return [json.loads(line) for f in (out / "_deadletter").glob("*.jsonl") for line in f.read_text().splitlines()]


def test_malformed_pages_are_counted_logged_dead_lettered_and_skipped(tmp_path: Path) -> None:
    rate = 0.02
    with LocalSite(books=200, seed=11, malformed_rate=rate) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           *TOLERATE_BAD_PAGES)
        bad = [b for b in site.catalog if is_malformed(11, b.path, rate)]
    assert bad, "the seed should produce some malformed pages"
    assert result.returncode == 0 and "Traceback" not in result.log
    records = dead_letters(tmp_path / "out")
    assert sorted(r["url"] for r in records) == sorted(site.url + b.path for b in bad)
    assert {(r["kind"], r["reason"], r["field"]) for r in records} == {("page", "malformed", "upc")}
    assert len(result.rows()) == 200 - len(bad)
    for book in bad:
        assert f"Dropped malformed page {site.url}{book.path}: field 'upc'" in result.log
    assert f"'pages/malformed': {len(bad)}" in result.log
    assert f"'pages/malformed/upc': {len(bad)}" in result.log


@pytest.mark.parametrize("args,message", [
    (["-s", "PARQUET_ROW_GROUP_SIZE=-5"], "Invalid setting PARQUET_ROW_GROUP_SIZE='-5'"),
    (["-s", "PARQUET_COMPRESSION=rar"], "Invalid setting PARQUET_COMPRESSION='rar'"),
    (["-a", "start_url=index.html"], "Invalid spider argument start_url='index.html'"),
])
def test_bad_input_fails_at_start_naming_it(books_site: LocalSite, tmp_path: Path, args: list[str],
                                            message: str) -> None:
    result = run_crawl("books", tmp_path / "out", "-a", f"start_url={books_site.url}", *args)
    assert result.returncode != 0
    assert message in result.log
    assert "Spider opened" not in result.log  # refused before any request went out


@pytest.mark.parametrize("price", ["£1.005", "£12345678901.00", "£1,2,3,4"])
def test_a_value_the_dataset_cannot_hold_fails_its_page_not_the_crawl(tmp_path: Path, price: str) -> None:
    rate = 0.1
    with LocalSite(books=60, seed=11, malformed_rate=rate, malformed_price=price) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}")
        bad = [b for b in site.catalog if is_malformed(11, b.path, rate)]
    assert bad, "the seed should produce some malformed pages"
    assert result.returncode == 5, result.log[-3000:]  # dead letters beyond the share: said, not hidden
    assert "Traceback" not in result.log and "Closing spider (finished)" in result.log
    assert len(result.rows()) == 60 - len(bad)
    assert stat(result, "pages/malformed") == len(bad)
    assert sorted(r["url"] for r in dead_letters(tmp_path / "out")) == sorted(site.url + b.path for b in bad)


def test_an_oversize_page_is_cancelled_and_dead_lettered(tmp_path: Path) -> None:
    """Over the project's DOWNLOAD_MAXSIZE (8 MiB; Scrapy's 1 GiB stored a 50 MB page whole)."""
    rate = 0.05
    with LocalSite(books=60, seed=11, malformed_rate=rate, malformed_pad_kb=9 * 1024) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           *TOLERATE_BAD_PAGES)
        bad = [b for b in site.catalog if is_malformed(11, b.path, rate)]
    assert bad and result.returncode == 0, result.log[-3000:]
    assert len(result.rows()) == 60 - len(bad)
    records = dead_letters(tmp_path / "out")
    assert sorted(r["url"] for r in records) == sorted(site.url + b.path for b in bad)
    assert {(r["kind"], r["reason"]) for r in records} == {("request", "too_large")}
