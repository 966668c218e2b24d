"""The optional HTML run report: written beside the dataset, valid HTML, three real PNG charts."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser
from pathlib import Path

import scrapy
from scrapy.utils.test import get_crawler

from localsite.process import LocalSite
from scraper.extensions.report import RunReport, Samples
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
                           "-s", "RUN_REPORT_ENABLED=True", "-s", "AWS_SECRET_ACCESS_KEY=hunter2")
    assert result.returncode == 0, result.log[-3000:]
    report = tmp_path / "out" / "_report" / "report.html"
    assert f"Run report: {report}" in result.log
    text = report.read_text()
    for row in ("<th>exit status</th><td>0</td>", "<th>started (UTC)</th>", "<th>finished (UTC)</th>",
                f"<th>spider arguments</th><td>start_url={site.url}</td>",
                f"<th>output</th><td>{tmp_path / 'out'}</td>", "<th>monitor checks failed</th><td>0 of 6</td>",
                "<h2>Settings changed</h2>", "<th>RUN_REPORT_ENABLED</th><td>True</td>",
                "<th>AWS_SECRET_ACCESS_KEY</th><td>***</td>"):
        assert row in text, row
    assert "hunter2" not in text
    page = Page()
    page.feed(text)
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


def test_sampling_halves_its_resolution_so_any_run_plots_a_few_hundred_points() -> None:
    crawler = get_crawler(scrapy.Spider, {"RUN_REPORT_ENABLED": True, "RUN_REPORT_SAMPLES": 10})
    crawler.stats.open_spider()
    report = RunReport.from_crawler(crawler)
    for _ in range(1000):  # a run 1000 ticks long
        report._tick()
    times = report.samples.times
    assert 10 <= len(times) < 20 and report._every == 64
    assert len(report.samples.pages) == len(times)
    assert times == sorted(times)


def test_halving_keeps_the_last_sample() -> None:
    samples = Samples(times=[float(t) for t in range(9)], pages=list(range(9)), items=list(range(9)))
    samples.statuses["200"] = list(range(9))
    samples.halve()
    assert samples.times == [0.0, 2.0, 4.0, 6.0, 8.0] and samples.statuses["200"] == [0, 2, 4, 6, 8]
