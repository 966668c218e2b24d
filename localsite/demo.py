"""``make demo``: start the local site, crawl it with ``scrapy crawl books``, show the Parquet output."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds

from localsite.process import LocalSite

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--books", type=int, default=1000)
    parser.add_argument("--out", default=None,
                        help="PARQUET_URI for the demo crawl (default: data/demo/<UTC time>)")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    out = Path(args.out or f"data/demo/{stamp}").resolve()
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty: remove it or pass another --out")
    with LocalSite(books=args.books) as site:
        print(f"Local site with {args.books} books at {site.url}", flush=True)
        crawl = [sys.executable, "-m", "scrapy", "crawl", "books", "-a", f"start_url={site.url}index.html",
                 "-s", f"PARQUET_URI={out}"]
        print("$", " ".join(crawl[2:]), flush=True)
        code = subprocess.call(crawl, cwd=ROOT)
    if code:
        return code
    table = ds.dataset(out, format="parquet").to_table()
    print(f"\n{table.num_rows} rows written to {out}\n")
    print(table.schema.remove_metadata().to_string(show_field_metadata=False))
    print()
    columns = ["title", "category", "price_incl_tax", "currency", "availability", "rating"]
    for row in table.select(columns).slice(0, 5).to_pylist():
        print("  ", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
