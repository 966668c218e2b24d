"""``python -m localsite.static DIR``: serve saved pages of a site from a directory, behind the
books site's fault knobs (latency, rate limit, 429/5xx/drops, ``/_stats``, ``/_control``).

The quickest fixture for a new spider's tests (docs/add-a-spider.md): save a few pages of the real site
under ``tests/fixtures/<site>/`` (``index.html`` for ``/``; a path ending in ``/`` serves its
``index.html``) and start ``StaticSite(directory)`` in a test. Absolute links to the real site (a
sitemap's ``<loc>``) are served pointing here: ``--origin https://shop.example`` rewrites that origin to
this server's URL. A malformed HTML page (``--malformed-rate``) is served truncated to its first half."""

from __future__ import annotations

import argparse
import mimetypes
from pathlib import Path

from localsite.__main__ import add_server_args, fault_config, run_site


class StaticSite:
    """Maps a path to ``(status, body)`` from files under ``root``."""

    charset: str | None = "utf-8"

    def __init__(self, root: Path, origin: str = "") -> None:
        self.root = root.resolve()
        self.origin = origin.rstrip("/")
        self.served_at = ""  # this server's URL, once it listens
        self.content_type = "text/html"

    def render(self, path: str, malformed: bool = False) -> tuple[int, str]:
        file = (self.root / (path or "index.html")).resolve()
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file() or self.root not in file.parents:
            return 404, "<html><body><h1>404 Not Found</h1></body></html>"
        self.content_type = mimetypes.guess_type(file.name)[0] or "text/html"
        body = file.read_text(encoding="utf-8")
        if self.origin and self.served_at:
            body = body.replace(self.origin, self.served_at.rstrip("/"))
        truncate = malformed and self.content_type == "text/html"  # (a sitemap stays whole: the crawl's map)
        return 200, body[:len(body) // 2] if truncate else body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--origin", default="", help="the real site's origin in the saved pages, served as this one")
    add_server_args(parser)
    args = parser.parse_args()
    if not args.directory.is_dir():
        parser.error(f"not a directory: {args.directory}")
    site = StaticSite(args.directory, args.origin)
    run_site(site, fault_config(args), f"Static site {args.directory}", args.host, args.port,
             on_ready=lambda url: setattr(site, "served_at", url))


if __name__ == "__main__":
    main()
