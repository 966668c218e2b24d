"""``scrapy genspider`` whose default template is this project's (``project``: a spider in the house
style, see docs/add-a-spider.md), and which exits non-zero when it writes nothing: a template that does
not exist (Scrapy prints "Unable to find template" and exits 0), or a spider that already does. Its
second argument becomes the spider's start URL as given (``http://127.0.0.1:8765/catalogue/``); a bare
host gets ``http://`` when it is local and ``https://`` otherwise, and a ``/`` path."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy.commands import genspider

DEFAULT_TEMPLATE = "project"


class Command(genspider.Command):
    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.set_defaults(template=DEFAULT_TEMPLATE)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        self._wrote, self._missing = False, False
        self._start_url = start_url(args[1]) if len(args) == 2 else ""
        super().run(args, opts)
        if self._missing or (len(args) == 2 and not opts.list and not opts.dump and not self._wrote):
            self.exitcode = self.exitcode or 1
        elif self._wrote and opts.template == DEFAULT_TEMPLATE:
            module = genspider.sanitize_module_name(args[0])
            print(f"Its start URL: {self._start_url} (default_start_url; -a start_url=... overrides it).\n"
                  f"Next: the page parser scraper/pages/{module}.py with parse_page(text, url, scraped_at) -> Page "
                  f"(docs/add-a-spider.md), then: scrapy crawl {args[0]} -a start_url=URL")

    def _generate_template_variables(self, module: str, name: str, url: str, template_name: str) -> dict[str, Any]:
        variables = super()._generate_template_variables(module, name, url, template_name)
        if self._start_url:
            variables.update(url=self._start_url, domain=urlsplit(self._start_url).netloc)
        return variables

    def _find_template(self, template: str) -> Path | None:
        found = super()._find_template(template)
        self._missing = self._missing or found is None
        return found

    def _genspider(self, *args: Any, **kwargs: Any) -> Any:
        self._wrote = True
        return super()._genspider(*args, **kwargs)


def start_url(argument: str) -> str:
    """The start URL a genspider argument names: as given with a scheme; a bare ``host[:port][/path]``
    gets ``http://`` when local (localhost, a loopback or private address) and ``https://`` otherwise."""
    if "://" not in argument:
        host = urlsplit("//" + argument).hostname or ""
        try:
            address = ipaddress.ip_address(host) if host != "localhost" else ipaddress.ip_address("127.0.0.1")
            local = address.is_private or address.is_loopback
        except ValueError:
            local = False
        argument = ("http://" if local else "https://") + argument
    parts = urlsplit(argument)
    return argument if parts.path else argument + "/"
