"""An optional run report: one HTML page beside the output, for people who would rather look than read.

Its charts are matplotlib PNGs embedded as data URIs, so the page is one self-contained file; rendering
happens once, at the end, off the crawl's hot path. Behaviour and settings: README.md (Run report).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings, overridden_settings

from scraper.config import InvalidSetting, get_bool, get_float, get_int
from scraper.crawling import spider_of
from scraper.output import join_uri, side_location
from scraper.parquet.dataset import resolve_uri
from scraper.secrets import SECRET_NAME, mask_url
from scraper.timers import Repeating, every, stop

logger = logging.getLogger(__name__)

STATUS_PREFIX = "downloader/response_status_count/"
DEFAULT_INTERVAL = 0.1  # seconds between the first samples
DEFAULT_SAMPLES = 300  # the least samples kept once the run is long enough (at most twice as many)
SPIDER_PRIORITY = 30  # settings set by the spider or on the command line (Scrapy's "spider" priority and up)


@dataclass
class Samples:
    """What the report plots: one entry per sample time (seconds since the crawl opened)."""

    times: list[float] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    concurrency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    in_flight: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def halve(self) -> None:
        """Keep every other sample (the last one always): half the resolution, half the memory."""
        keep = list(range(len(self.times) - 1, -1, -2))[::-1]

        def thin(series: list[Any]) -> list[Any]:
            return [series[i] for i in keep if i < len(series)]

        self.times, self.pages, self.items = thin(self.times), thin(self.pages), thin(self.items)
        for table in (self.statuses, self.concurrency, self.in_flight):
            for key in list(table):
                table[key] = thin(table[key])


class RunReport:
    def __init__(self, crawler: Crawler, interval: float, uri_template: str, samples: int = DEFAULT_SAMPLES) -> None:
        self.crawler = crawler
        self.interval = interval
        self.uri_template = uri_template
        self.max_samples = 2 * samples
        self.samples = Samples()
        self._started = time.monotonic()
        self._loop: Repeating | None = None
        self._ticks = 0
        self._every = 1  # sample every this many ticks (doubles with each halving)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunReport:
        settings = crawler.settings
        if not get_bool(settings, "RUN_REPORT_ENABLED", False):
            raise NotConfigured
        if importlib.util.find_spec("matplotlib") is None:  # an optional extra: fail the start, not the report
            raise InvalidSetting("RUN_REPORT_ENABLED", True, "matplotlib installed for the report's charts "
                                 "(pip install -r requirements-report.txt)")
        report = cls(crawler, get_float(settings, "RUN_REPORT_INTERVAL", DEFAULT_INTERVAL, minimum=0.01),
                     (settings.get("RUN_REPORT_URI") or "").strip(),
                     get_int(settings, "RUN_REPORT_SAMPLES", DEFAULT_SAMPLES, minimum=10))
        crawler.signals.connect(report.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(report.spider_closed, signal=signals.spider_closed)
        return report

    def spider_opened(self) -> None:
        self._started = time.monotonic()
        self._loop = every(self.interval, self._tick)

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % self._every:
            return
        self.sample()
        if len(self.samples.times) >= self.max_samples:
            self.samples.halve()
            self._every *= 2

    def sample(self) -> None:
        stats = self.crawler.stats.get_stats()
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
                line = table[key]
                line.extend([float("nan")] * (index - len(line)))
                line.append(value)

    def spider_closed(self, reason: str) -> None:
        stop(self._loop)
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
        stats = self.crawler.stats.get_stats()
        outputs = [str(v) for k, v in stats.items() if k.startswith("parquet/dataset/")]
        outputs += [f"feed {mask_url(str(uri))}" for uri in self.crawler.settings.getdict("FEEDS")]
        arguments = stats.get("spider/arguments") or {}
        rows = [("exit status", f"{stats.get('outcome/exit_code', '?')} {stats.get('outcome/cause', '')}".strip()),
                ("finish reason", reason), ("started (UTC)", _when(stats.get("start_time"))),
                ("finished (UTC)", _when(stats.get("finish_time") or datetime.now(tz=stats["start_time"].tzinfo)
                                         if stats.get("start_time") else None)),
                ("elapsed (s)", round(self.samples.times[-1], 1)),
                ("spider arguments", ", ".join(f"{k}={v}" for k, v in arguments.items()) or "none"),
                ("output", ", ".join(outputs) or "none"),
                ("pages", stats.get("response_received_count", 0)),
                ("items", stats.get("item_scraped_count", 0)), ("rows written", stats.get("parquet/rows", 0)),
                ("dead letters", stats.get("deadletter/count", 0)),
                ("malformed pages", stats.get("pages/malformed", 0)),
                ("retries", stats.get("retry/count", 0)),
                ("monitor checks failed", f"{stats.get('monitors/failed', 0)} of {stats.get('monitors/checks', 0)}")]
        charts = "".join(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{png}"></figure>'
                         for title, png in self._charts())  # (each chart carries its title)
        name = html.escape(spider_of(self.crawler).name)
        return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Run report: {name}</title>"
                "<style>body{font-family:sans-serif;margin:2em;max-width:60em}th{text-align:left;padding-right:1em;"
                "vertical-align:top}td{word-break:break-all}img{max-width:100%}</style></head>"
                f"<body><h1>Run report: {name}</h1>{_table(rows)}{charts}"
                f"<h2>Settings changed</h2>{_table(changed_settings(self.crawler.settings))}</body></html>")

    def _charts(self) -> list[tuple[str, str]]:
        import matplotlib
        matplotlib.use("Agg")  # no display
        from matplotlib import pyplot as plt

        charts = []
        unit, scale = _time_unit(self.samples.times[-1] if self.samples.times else 0.0)
        for title, draw in (("Throughput (per second)", self._throughput),
                            ("Responses by status (cumulative)", self._statuses),
                            ("Download slots: concurrency limit and in flight", self._slots)):
            figure, axes = plt.subplots(figsize=(8, 3), dpi=80)
            draw(axes, scale)
            axes.set_xlabel(unit)
            axes.set_title(title)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(loc="upper left", fontsize="small")
            figure.tight_layout()
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
            plt.close(figure)
            charts.append((title, base64.b64encode(buffer.getvalue()).decode()))
        return charts

    def _throughput(self, axes: Any, scale: float) -> None:
        """Rates over about 1/100 of the run (at least a second): smooth for 3 hours, real for 3 seconds."""
        s = self.samples
        span = max(1.0, (s.times[-1] if s.times else 0.0) / 100)
        for label, series in (("pages/s", s.pages), ("items/s", s.items)):
            times, rates, start = [], [], 0
            for end in range(1, len(series)):
                while start < end - 1 and s.times[end] - s.times[start + 1] >= span:
                    start += 1
                times.append(s.times[end] / scale)
                rates.append((series[end] - series[start]) / max(s.times[end] - s.times[start], 1e-9))
            axes.plot(times, rates, label=label)

    def _statuses(self, axes: Any, scale: float) -> None:
        s = self.samples
        for status, series in sorted(s.statuses.items()):
            padded = series + [series[-1]] * (len(s.times) - len(series))
            axes.plot([t / scale for t in s.times], padded, label=status)

    def _slots(self, axes: Any, scale: float) -> None:
        s = self.samples
        for key in sorted(s.concurrency):
            for table, style, what in ((s.concurrency, "-", "limit"), (s.in_flight, ":", "in flight")):
                series = table[key] + [float("nan")] * (len(s.times) - len(table[key]))
                axes.plot([t / scale for t in s.times], series, style, label=f"{key} {what}")


def changed_settings(settings: BaseSettings) -> list[tuple[str, str]]:
    """Scrapy settings the project changed, and every setting the spider or the command line set,
    secrets masked."""
    names = {name for name, _ in overridden_settings(settings)}
    names |= {name for name in settings if (settings.getpriority(name) or 0) >= SPIDER_PRIORITY}
    return [(name, _shown(name, settings.get(name))) for name in sorted(names)]


def _shown(name: str, value: Any) -> str:
    if SECRET_NAME.search(name) and value:
        return "***"
    return mask_url(value) if isinstance(value, str) else str(value)


def _table(rows: Iterable[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "?"


def _time_unit(seconds: float) -> tuple[str, float]:
    """The x axis: seconds for a short run, minutes for one over 10 minutes, hours beyond 5 hours."""
    if seconds > 5 * 3600:
        return "hours", 3600.0
    if seconds > 600:
        return "minutes", 60.0
    return "seconds", 1.0
