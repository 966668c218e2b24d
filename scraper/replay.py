"""``python -m scraper.replay SPIDER RAW_DIR OUTPUT``: rebuild a dataset from a crawl's raw archive, without
the network, so a fixed parser or normaliser can be applied to old crawls (an unchanged one gives the crawl's
rows exactly). Behaviour: docs/dead-letters.md (Raw archive and replay).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs
from itemadapter import ItemAdapter
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.misc import load_object
from scrapy.utils.project import get_project_settings

from scraper.extensions.rawarchive import INDEX_PREFIX
from scraper.output import item_type_name
from scraper.pages.errors import PageParseError
from scraper.parquet.dataset import DatasetWriter, resolve_uri
from scraper.parquet.schema import arrow_schema
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    pages: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # item type -> rows written
    malformed_pages: int = 0  # pages (or some of their records) the parser refused
    normalize_errors: int = 0  # items dropped because their normaliser raised
    locations: dict[str, str] = field(default_factory=dict)  # item type -> dataset directory


def read_index(fs: pafs.FileSystem, directory: str) -> list[dict[str, Any]]:
    """Every archived page, once (the latest fetch of a file name wins), in fetch order."""
    latest: dict[str, dict[str, Any]] = {}
    for info in fs.get_file_info(pafs.FileSelector(directory)):
        if not (info.base_name.startswith(INDEX_PREFIX) and info.base_name.endswith(".jsonl")):
            continue
        with fs.open_input_stream(info.path) as stream:
            for line in stream.read().decode().splitlines():
                if not line.strip():
                    continue
                record = json.loads(line)
                known = latest.get(record["file"])
                if known is None or record["fetched_at"] >= known["fetched_at"]:
                    latest[record["file"]] = record
    return sorted(latest.values(), key=lambda r: (r["fetched_at"], r["file"]))


def replay(parse: Callable[..., Any], raw_uri: str, output_uri: str, *, compression: str = "zstd",
           row_group_size: int = 10_000) -> ReplayResult:
    """Parse every archived page with ``parse(text, url, scraped_at=...)`` (which returns a page with
    ``items`` and optionally ``errors``), normalise, and write ``output_uri`` (``%(item)s`` in it is
    replaced by the item type, needed when pages yield several types)."""
    fs, directory = resolve_uri(raw_uri)
    records = read_index(fs, directory.rstrip("/"))
    if not records:
        raise ValueError(f"no raw archive index ({INDEX_PREFIX}*.jsonl) in {mask_url(raw_uri)}")
    result = ReplayResult()
    writers: dict[type, DatasetWriter] = {}
    normalizers: dict[type, Callable[[dict[str, Any]], dict[str, Any]] | None] = {}
    for record in records:
        with fs.open_input_stream(f"{directory.rstrip('/')}/{record['file']}") as stream:
            text = stream.read().decode(record.get("encoding") or "utf-8")
        result.pages += 1
        try:
            page = parse(text, record["url"], scraped_at=datetime.fromisoformat(record["fetched_at"]))
        except PageParseError as exc:
            result.malformed_pages += 1
            logger.warning("Skipped malformed page %s (%s): %s", record["url"], record["file"], exc)
            continue
        errors = getattr(page, "errors", None) or []
        if errors:
            result.malformed_pages += 1
            logger.warning("Page %s (%s): %s record(s) skipped, first: %s", record["url"], record["file"],
                           len(errors), errors[0])
        for item in page.items:
            cls = type(item)
            if cls not in normalizers:
                path = getattr(cls, "normalizer", None)
                normalizers[cls] = load_object(path) if path else None
            if not _normalize(item, normalizers[cls], result):
                continue
            writer = writers.get(cls) or _open_writer(writers, cls, output_uri, compression, row_group_size)
            adapter = ItemAdapter(item)
            if writer.append(adapter.get(name) for name in writer.schema.names):
                writer.write(writer.take())
    for cls, writer in writers.items():
        parts = writer.close()
        name = item_type_name(cls)
        result.rows[name] = sum(p.rows for p in parts)
        result.locations[name] = writer.directory
        writer.finish(complete=True, extra={
            "finish_reason": "replayed", "item_type": name, "source": mask_url(raw_uri),
            "pages": result.pages, "malformed_pages": result.malformed_pages,
            "normalize_errors": result.normalize_errors,
        })
    return result


def _normalize(item: Any, function: Callable[[dict[str, Any]], dict[str, Any]] | None,
               result: ReplayResult) -> bool:
    if function is None:
        return True
    adapter = ItemAdapter(item)
    try:
        updates = function(dict(adapter.items()))
    except Exception as exc:  # like the pipeline: one bad record is dropped alone, and said so
        result.normalize_errors += 1
        logger.warning("Dropped a record of %s: normaliser failed: %r", adapter.get("url"), exc)
        return False
    for name, value in (updates or {}).items():
        adapter[name] = value
    return True


def _open_writer(writers: dict[type, DatasetWriter], cls: type, output_uri: str, compression: str,
                 row_group_size: int) -> DatasetWriter:
    name = item_type_name(cls)
    if "%(item)s" in output_uri:
        location = output_uri.replace("%(item)s", name)
    elif writers:
        raise ValueError(f"pages yield several item types: put %(item)s in the output ({output_uri})")
    else:
        location = output_uri
    fs, directory = resolve_uri(location)
    existing = fs.get_file_info(directory)
    if existing.type != pafs.FileType.NotFound and fs.get_file_info(pafs.FileSelector(directory)):
        raise ValueError(f"{mask_url(location)} is not empty: replay into a new directory")
    writers[cls] = DatasetWriter(fs, directory, arrow_schema(cls), compression=compression,
                                 row_group_size=row_group_size)
    return writers[cls]


def raw_parser_of(spider: str) -> Callable[..., Any]:
    """The page parser a spider declares for replays (``raw_parser = "dotted.path"``)."""
    settings = get_project_settings()
    if not settings.getlist("SPIDER_MODULES"):  # run outside the project directory
        settings.setmodule("scraper.settings", priority="project")
    spidercls = get_spider_loader(settings).load(spider)
    path = getattr(spidercls, "raw_parser", None)
    if not path:
        raise ValueError(f"spider {spider!r} declares no raw_parser: it keeps no replayable raw archive")
    return load_object(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scraper.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spider", help="the spider whose raw archive this is (e.g. quotes)")
    parser.add_argument("raw", help="the raw archive directory (e.g. data/quotes/<time>/_raw)")
    parser.add_argument("output", help="a new dataset directory (local path or pyarrow URI)")
    parser.add_argument("--compression", default="zstd",
                        choices=("zstd", "snappy", "gzip", "brotli", "lz4", "none"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    try:
        result = replay(raw_parser_of(args.spider), args.raw, args.output, compression=args.compression)
    except (KeyError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, rows in result.rows.items():
        print(f"{rows} {name} rows from {result.pages} page(s) written to {result.locations[name]}")
    if result.malformed_pages or result.normalize_errors:
        print(f"{result.malformed_pages} malformed page(s), {result.normalize_errors} normaliser error(s)"
              " (see the warnings above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
