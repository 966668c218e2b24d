"""``scrapy genspider`` whose default template is this project's (``project``: a spider in the house
style, see docs/add-a-spider.md), and which exits non-zero when it writes nothing: a template that does
not exist (Scrapy prints "Unable to find template" and exits 0), or a spider that already does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scrapy.commands import genspider

DEFAULT_TEMPLATE = "project"


class Command(genspider.Command):
    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.set_defaults(template=DEFAULT_TEMPLATE)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        self._wrote, self._missing = False, False
        super().run(args, opts)
        if self._missing or (len(args) == 2 and not opts.list and not opts.dump and not self._wrote):
            self.exitcode = self.exitcode or 1

    def _find_template(self, template: str) -> Path | None:
        found = super()._find_template(template)
        self._missing = self._missing or found is None
        return found

    def _genspider(self, *args: Any, **kwargs: Any) -> Any:
        self._wrote = True
        return super()._genspider(*args, **kwargs)
