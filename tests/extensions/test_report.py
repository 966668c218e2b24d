"""The optional HTML run report: written beside the dataset, valid HTML, three real PNG charts."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser
from pathlib import Path

from scraper.localsite.process import LocalSite
from tests.helpers import run_crawl


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def test_run_report_renders(tmp_path: Path) -> None:
    with LocalSite(books=60, seed=12, latency_ms=20) as site:
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", "RUN_REPORT_ENABLED=True", "-s", "RUN_REPORT_INTERVAL=0.2")
    assert result.returncode == 0, result.log[-3000:]
    report = tmp_path / "out" / "_report" / "report.html"
    assert f"Run report: {report}" in result.log
    page = Page()
    page.feed(report.read_text())
    page.close()
    assert page.title == "Run report: books"
    assert [img["alt"] for img in page.images] == [
        "Throughput (per second)", "Responses by status (cumulative)",
        "Download slots: concurrency limit and in flight"]
    for img in page.images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
        assert (width, height) == (640, 240)
    assert "Traceback" not in result.log


def test_no_report_by_default(tmp_path: Path, books_site: LocalSite) -> None:
    result = run_crawl("books", tmp_path / "out", "-a", f"start_url={books_site.url}catalogue/page-50.html")
    assert result.returncode == 0
    assert not (tmp_path / "out" / "_report").exists()
