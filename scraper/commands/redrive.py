"""``scrapy redrive DATASET``: re-crawl a dataset's dead letters into the same dataset, with the
spider its manifest names (see :mod:`scraper.middlewares.redrive`). Exit status as ``scrapy crawl``."""

from __future__ import annotations

import argparse
import json

from scrapy.exceptions import UsageError

from scraper.commands import crawl
from scraper.parquet.dataset import MANIFEST, resolve_uri


class Command(crawl.Command):
    def syntax(self) -> str:
        return "[options] <dataset directory or URI>"

    def short_desc(self) -> str:
        return "Re-crawl a dataset's dead letters into the same dataset"

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError
        assert self.crawler_process is not None
        dataset = args[0]
        settings = self.crawler_process.settings
        fs, directory = resolve_uri(dataset, settings)
        try:
            with fs.open_input_stream(f"{directory}/{MANIFEST}") as stream:
                manifest = json.loads(stream.read())
            spider = manifest["spider"]
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{dataset} has no readable {MANIFEST} naming its spider ({exc})") from None
        # the first crawl's spider arguments (its start_url: what is on-site), unless given again
        opts.spargs = {**manifest.get("stats", {}).get("spider/arguments", {}), **opts.spargs}
        settings.set("PARQUET_URI", dataset, priority="cmdline")
        settings.set("REDRIVE_FROM", dataset, priority="cmdline")
        super().run([spider], opts)
