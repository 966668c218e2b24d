"""An optional run report: one HTML page beside the output, with plots, for people who would rather
look than read.

``RUN_REPORT_ENABLED = True`` samples the crawl every ``RUN_REPORT_INTERVAL`` seconds (pages and items
per second, responses by status, each download slot's concurrency limit and requests in flight) and,
when the spider closes, writes ``_report/report.html`` beside the dataset (or to ``RUN_REPORT_URI``):
a summary table and three matplotlib charts embedded as PNG data URIs, so the page is one
self-contained file. Rendering happens once, at the end, off the crawl's hot path.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import AsyncioLoopingCall, create_looping_call

from scraper.config import get_bool, get_float
from scraper.output import join_uri, side_location
from scraper.parquet.dataset import resolve_uri

logger = logging.getLogger(__name__)

STATUS_PREFIX = "downloader/response_status_count/"


@dataclass
class Samples:
    """What the report plots: one entry per sample time (seconds since the crawl opened)."""

    times: list[float] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    concurrency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    in_flight: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


class RunReport:
    def __init__(self, crawler: Crawler, interval: float, uri_template: str) -> None:
        self.crawler = crawler
        self.interval = interval
        self.uri_template = uri_template
        self.samples = Samples()
        self._started = time.monotonic()
        self._loop: AsyncioLoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunReport:
        settings = crawler.settings
        if not get_bool(settings, "RUN_REPORT_ENABLED", False):
            raise NotConfigured
        report = cls(crawler, get_float(settings, "RUN_REPORT_INTERVAL", 1.0, minimum=0.05),
                     (settings.get("RUN_REPORT_URI") or "").strip())
        crawler.signals.connect(report.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(report.spider_closed, signal=signals.spider_closed)
        return report

    def spider_opened(self) -> None:
        self._started = time.monotonic()
        self._loop = create_looping_call(self.sample)
        self._loop.start(self.interval)

    def sample(self) -> None:
        stats = self.crawler.stats.get_stats()  # type: ignore[union-attr]
        s = self.samples
        index = len(s.times)
        s.times.append(time.monotonic() - self._started)
        s.pages.append(stats.get("response_received_count", 0))
        s.items.append(stats.get("item_scraped_count", 0))
        for key, value in stats.items():
            if key.startswith(STATUS_PREFIX):
                series = s.statuses[key[len(STATUS_PREFIX):]]
                series.extend([0] * (index - len(series)))
                series.append(value)
        try:
            slots = self.crawler.engine.downloader.slots
        except RuntimeError:
            slots = {}
        for key, slot in slots.items():
            for table, value in ((s.concurrency, slot.concurrency), (s.in_flight, len(slot.transferring))):
                series = table[key]
                series.extend([float("nan")] * (index - len(series)))
                series.append(value)

    def spider_closed(self, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.sample()
        try:
            location = side_location(self.crawler, self.uri_template, "_report")
            fs, path = resolve_uri(location, self.crawler.settings)
            fs.create_dir(path, recursive=True)
            target = join_uri(path, "report.html")
            with fs.open_output_stream(target) as stream:
                stream.write(self.render(reason).encode())
        except Exception as exc:  # a report must never fail a crawl that worked
            logger.error("Run report not written: %s: %s", type(exc).__name__, exc)
            return
        logger.info("Run report: %s", join_uri(location, "report.html"))

    def render(self, reason: str) -> str:
        stats = self.crawler.stats.get_stats()  # type: ignore[union-attr]
        rows = [("finish reason", reason), ("pages", stats.get("response_received_count", 0)),
                ("items", stats.get("item_scraped_count", 0)), ("rows written", stats.get("parquet/rows", 0)),
                ("dead letters", stats.get("deadletter/count", 0)),
                ("retries", stats.get("retry/count", 0)), ("elapsed (s)", round(self.samples.times[-1], 1))]
        table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        charts = "".join(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
                         f"<figcaption>{html.escape(title)}</figcaption></figure>"
                         for title, png in self._charts())
        name = html.escape(self.crawler.spider.name)
        return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Run report: {name}</title>"
                "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
                "img{max-width:100%}</style></head>"
                f"<body><h1>Run report: {name}</h1><table>{table}</table>{charts}</body></html>")

    def _charts(self) -> list[tuple[str, str]]:
        import matplotlib
        matplotlib.use("Agg")  # no display
        from matplotlib import pyplot as plt

        charts = []
        for title, draw in (("Throughput (per second)", self._throughput),
                            ("Responses by status (cumulative)", self._statuses),
                            ("Download slots: concurrency limit and in flight", self._slots)):
            figure, axes = plt.subplots(figsize=(8, 3), dpi=80)
            draw(axes)
            axes.set_xlabel("seconds")
            axes.set_title(title)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(loc="upper left", fontsize="small")
            figure.tight_layout()
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
            plt.close(figure)
            charts.append((title, base64.b64encode(buffer.getvalue()).decode()))
        return charts

    def _throughput(self, axes: Any) -> None:
        s = self.samples
        for label, series in (("pages/s", s.pages), ("items/s", s.items)):
            rates = [(b - a) / max(t1 - t0, 1e-9)
                     for a, b, t0, t1 in zip(series, series[1:], s.times, s.times[1:])]
            axes.plot(s.times[1:], rates, label=label)

    def _statuses(self, axes: Any) -> None:
        s = self.samples
        for status, series in sorted(s.statuses.items()):
            padded = series + [series[-1]] * (len(s.times) - len(series))
            axes.plot(s.times, padded, label=status)

    def _slots(self, axes: Any) -> None:
        s = self.samples
        for key in sorted(s.concurrency):
            for table, style, what in ((s.concurrency, "-", "limit"), (s.in_flight, ":", "in flight")):
                series = table[key] + [float("nan")] * (len(s.times) - len(table[key]))
                axes.plot(s.times, series, style, label=f"{key} {what}")
