"""``scrapy crawl quotes`` end to end against the local quotes API, in a subprocess like a user runs it;
then ``python -m scraper.replay`` rebuilds the same rows from the raw archive, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from localsite.faults import is_malformed
from localsite.process import LocalQuotesSite
from localsite.quotes import QuoteCatalog, QuotesSite
from scraper.items import QuoteItem
from scraper.normalize.quotes import CONTENT_FIELDS
from scraper.normalize.text import content_hash
from scraper.parquet.schema import arrow_schema
from scraper.replay import raw_parser_of, replay
from tests.helpers import ROOT, TOLERATE_BAD_PAGES, CrawlResult, run_crawl, stat

QUOTES, SEED = 95, 3


def assert_clean_log(result: CrawlResult) -> None:
    assert result.returncode == 0, result.log[-3000:]
    for marker in ("Traceback", "DeprecationWarning", "Deprecated", "ERROR"):
        assert marker not in result.log, marker


def expected_rows(catalog: QuoteCatalog, base_url: str, skip: set[int] = frozenset()) -> dict[int, list]:
    """Ground truth per page (minus scraped_at): from the generator's clean values, not the normaliser."""
    pages: dict[int, list] = defaultdict(list)
    for quote in catalog:
        if quote.index in skip:
            continue
        row = quote.expected_item(base_url)
        row["content_hash"] = content_hash({name: row[name] for name in CONTENT_FIELDS})
        pages[quote.page].append(row)
    return {page: sorted(rows, key=_key) for page, rows in pages.items()}


def rows_by_page(rows: list[dict]) -> dict[int, list]:
    pages: dict[int, list] = defaultdict(list)
    for row in rows:
        pages[row["page"]].append(row)
    return {page: sorted(rows, key=_key) for page, rows in pages.items()}


def _key(row: dict) -> tuple:
    return row["text"], row["author_slug"], row["tags"]


@pytest.fixture(scope="module")
def api() -> LocalQuotesSite:
    with LocalQuotesSite(quotes=QUOTES, seed=SEED) as site:
        yield site


@pytest.fixture(scope="module")
def crawl(api: LocalQuotesSite, tmp_path_factory: pytest.TempPathFactory) -> CrawlResult:
    out = tmp_path_factory.mktemp("quotes") / "dataset"
    started = datetime.now(UTC)
    result = run_crawl("quotes", out, "-a", f"start_url={api.start_url}")
    result.started = started  # type: ignore[attr-defined]
    result.paths = api.stats(paths=True)["paths"]  # type: ignore[attr-defined]
    return result


def test_every_quote_exactly_once_every_field_exact(crawl: CrawlResult, api: LocalQuotesSite) -> None:
    assert_clean_log(crawl)
    rows = crawl.rows()
    assert len(rows) == QUOTES
    for row in rows:
        scraped_at = row.pop("scraped_at")
        assert scraped_at.tzinfo is not None and scraped_at >= crawl.started  # type: ignore[attr-defined]
    assert rows_by_page(rows) == expected_rows(api.catalog, api.url)
    assert stat(crawl, "normalize/items") == QUOTES


def test_follows_has_next_one_page_at_a_time(crawl: CrawlResult, api: LocalQuotesSite) -> None:
    pages = api.catalog.pages
    assert crawl.paths == {"robots.txt": 1, **{f"api/quotes?page={n}": 1  # type: ignore[attr-defined]
                                               for n in range(1, pages + 1)}}
    assert f"Parquet: {QUOTES} quote rows in 1 part(s)" in crawl.log


def test_dataset_schema_comes_from_the_item_declaration(crawl: CrawlResult) -> None:
    dataset = ds.dataset(crawl.output, format="parquet")
    assert dataset.schema.remove_metadata() == arrow_schema(QuoteItem).remove_metadata()
    assert dataset.schema.field("tags").type == pa.list_(pa.string())
    assert dataset.schema.field("author_goodreads_link").nullable
    assert not dataset.schema.field("text").nullable
    manifest = json.loads((crawl.output / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["item_type"] == "quote" and manifest["rows"] == QUOTES
    assert (crawl.output / "_SUCCESS").exists()


def test_raw_responses_are_kept_byte_for_byte_beside_the_dataset(crawl: CrawlResult,
                                                                 api: LocalQuotesSite) -> None:
    raw = crawl.output / "_raw"
    site = QuotesSite(api.catalog)
    pages = api.catalog.pages
    assert sorted(p.name for p in raw.glob("page-*.json")) == sorted(f"page-{n}.json" for n in range(1, pages + 1))
    for n in range(1, pages + 1):
        assert (raw / f"page-{n}.json").read_bytes() == site.render(f"api/quotes?page={n}")[1].encode()
    (index,) = raw.glob("index-*.jsonl")
    records = [json.loads(line) for line in index.read_text().splitlines()]
    assert [r["file"] for r in records] == [f"page-{n}.json" for n in range(1, pages + 1)]
    assert all(r["status"] == 200 and r["encoding"] == "utf-8" for r in records)
    scraped = {row["page"]: row["scraped_at"] for row in crawl.rows()}
    for n, record in enumerate(records, 1):
        assert datetime.fromisoformat(record["fetched_at"]) == scraped[n]  # replays can be exact
    assert stat(crawl, "raw_archive/files") == pages


def test_replay_rebuilds_identical_rows_offline(crawl: CrawlResult, tmp_path: Path) -> None:
    """The CLI as a user runs it, after the site is gone (the raw archive is all it reads)."""
    out = tmp_path / "replayed"
    proc = subprocess.run([sys.executable, "-m", "scraper.replay", "quotes", str(crawl.output / "_raw"), str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{QUOTES} quote rows from 10 page(s) written to {out}" in proc.stdout
    original = ds.dataset(crawl.output, format="parquet").to_table()
    replayed = ds.dataset(out, format="parquet").to_table()
    assert replayed.schema.remove_metadata() == original.schema.remove_metadata()
    key = lambda row: (row["page"], _key(row))  # noqa: E731
    assert sorted(replayed.to_pylist(), key=key) == sorted(original.to_pylist(), key=key)
    assert (out / "_SUCCESS").exists() and not (out / "_raw").exists()
    assert json.loads((out / "_manifest.json").read_text())["finish_reason"] == "replayed"


def test_replay_refuses_what_it_cannot_do(crawl: CrawlResult, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        raw_parser_of("nope")
    with pytest.raises(ValueError, match="declares no raw_parser"):
        raw_parser_of("books")
    parse = raw_parser_of("quotes")
    with pytest.raises(ValueError, match="no raw archive index"):
        replay(parse, str(tmp_path), str(tmp_path / "out"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="is not empty"):
        replay(parse, str(crawl.output / "_raw"), str(tmp_path / "full"))


def test_faults_and_malformed_pages_go_through_every_middleware(tmp_path: Path) -> None:
    """Retries with backoff, UA rotation and the malformed-page middleware apply to the new spider
    without a line of its own: they come from the project's settings."""
    quotes, seed, rate = 60, 5, 0.3
    with LocalQuotesSite(quotes=quotes, seed=seed, fault_rate=0.3, fault_kinds="500,503,429,drop",
                         fault_retry_after=0.2, malformed_rate=rate) as site:
        result = run_crawl("quotes", tmp_path / "out", "-a", f"start_url={site.start_url}",
                           "-s", "RETRY_BACKOFF_BASE=0.05", *TOLERATE_BAD_PAGES)
        agents = site.stats(agents=True)["user_agents"]
        catalog = site.catalog
    bad_pages = [n for n in range(1, catalog.pages + 1) if is_malformed(seed, f"api/quotes?page={n}", rate)]
    assert bad_pages, "the seed should produce malformed pages"
    assert result.returncode == 0 and "Traceback" not in result.log
    skipped = {(n - 1) * 10 for n in bad_pages}  # the first quote of a malformed page has no text
    rows = result.rows()
    for row in rows:
        row.pop("scraped_at")
    assert rows_by_page(rows) == expected_rows(catalog, site.url, skip=skipped)
    assert stat(result, "pages/malformed") == len(bad_pages)
    assert stat(result, "retry/count") > 0
    assert not any(agent.startswith("Scrapy/") or agent.startswith("scraper/") for agent in agents)


@pytest.mark.parametrize("setting", ["RAW_ARCHIVE_URI", "RAW_ARCHIVE_ENABLED"])
def test_raw_archive_settings(api: LocalQuotesSite, tmp_path: Path, setting: str) -> None:
    out = tmp_path / "out"
    value = f"{tmp_path}/raw/%(name)s-%(time)s" if setting == "RAW_ARCHIVE_URI" else "False"
    result = run_crawl("quotes", out, "-a", f"start_url={api.start_url}", "-s", f"{setting}={value}")
    assert_clean_log(result)
    assert len(result.rows()) == QUOTES and not (out / "_raw").exists()
    archived = sorted((tmp_path / "raw").glob("quotes-*/page-*.json"))
    if setting == "RAW_ARCHIVE_URI":
        assert len(archived) == api.catalog.pages  # placeholders as in PARQUET_URI
    else:
        assert archived == [] and "raw_archive/files" not in result.log
