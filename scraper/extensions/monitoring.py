"""Runs Spidermon's close-time monitor suites (ours: :class:`scraper.monitors.CloseMonitors`) and
makes a failed check fail the run: stats ``monitors/failed`` and ``monitors/failures`` feed the exit
status. It stands in for Spidermon's own extension, which reports a failed check as a unittest
traceback through the deprecated ``Spider.log``, imports 150 ms of modules a crawl does not use, and
pays ~20 stats calls per item for field coverage: here each check that fails is one ERROR line,
coverage is counted in a dict, and the same ``spidermon_field_coverage/...`` stats come out at close."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from typing import Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings
from scrapy.utils.misc import load_object
from spidermon import MonitorSuite
from spidermon.core.actions import Action
from spidermon.results.monitor import MonitorResult
from spidermon.runners import MonitorRunner

from scraper.config import InvalidSetting, get_bool, get_float
from scraper.crawling import spider_of, stats_of
from scraper.monitors import COVERAGE
from scraper.parquet.schema import arrow_schema

logger = logging.getLogger(__name__)

DEFAULT_MIN_FIELD_COVERAGE = 0.9
DEFAULT_SUITES = ["scraper.monitors.CloseMonitors"]


class _LoggedResult(MonitorResult):
    """Spidermon's result, reported as one line per failed check and per failed alert action."""

    def finish_step(self) -> None:
        super().finish_step()
        for item in self.step.error_results:
            detail = item.reason if item.reason else item.error  # a check's message; a crash's traceback
            logger.error("Monitor %s %s: %s", item.item.name, item.status, detail)


class Monitoring:
    def __init__(self, crawler: Crawler, suites: list[MonitorSuite], min_coverage: float,
                 coverage_overrides: dict[str, float]) -> None:
        self.crawler = crawler
        self.suites = suites
        self.min_coverage = min_coverage
        self.coverage_overrides = coverage_overrides
        self.items: Counter[type] = Counter()
        self.filled: defaultdict[type, Counter[str]] = defaultdict(Counter)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Monitoring:
        settings = crawler.settings
        if not get_bool(settings, "SPIDERMON_ENABLED", False):
            raise NotConfigured("SPIDERMON_ENABLED is off")
        actions = [_load("MONITOR_ACTIONS", path, Action) for path in settings.getlist("MONITOR_ACTIONS")]
        suites = []
        for path in settings.getlist("SPIDERMON_SPIDER_CLOSE_MONITORS", DEFAULT_SUITES):
            suite = _load("SPIDERMON_SPIDER_CLOSE_MONITORS", path, MonitorSuite)(crawler=crawler)
            try:
                suite.add_monitors_failed_actions(actions)
            except Exception as exc:  # an action's own settings are missing or wrong
                raise InvalidSetting("MONITOR_ACTIONS", settings.getlist("MONITOR_ACTIONS"),
                                     f"Spidermon actions whose settings are set ({type(exc).__name__}: {exc})"
                                     ) from None
            suites.append(suite)
        ext = cls(crawler, suites,
                  get_float(settings, "MONITOR_MIN_FIELD_COVERAGE", DEFAULT_MIN_FIELD_COVERAGE, minimum=0, maximum=1),
                  _shares(settings, "MONITOR_FIELD_COVERAGE"))
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def item_scraped(self, item: Any) -> None:
        cls = type(item)
        self.items[cls] += 1
        filled = self.filled[cls]
        pairs = ((f.name, getattr(item, f.name)) for f in dataclasses.fields(item)) \
            if dataclasses.is_dataclass(item) else ItemAdapter(item).items()  # the former 4x faster
        for field, value in pairs:
            if value is None or (not value and isinstance(value, (str, list, dict, tuple))):
                continue
            filled[field] += 1

    def spider_closed(self) -> None:
        stats = stats_of(self.crawler)
        if "start_time" not in stats.get_stats():
            return  # the spider never opened
        rules = self._coverage()
        data = {"stats": stats.get_stats(), "crawler": self.crawler, "spider": self.crawler.spider,
                "stats_history": getattr(self.crawler.spider, "stats_history", []), "job": None,
                "sc_spider_name": spider_of(self.crawler).name, "field_coverage_rules": rules}
        failures: list[str] = []
        checks = 0
        for suite in self.suites:
            runner = _Runner()
            result = runner.run(suite, **data)
            checks += len(result.monitor_results)
            failures.extend(f"{item.item.name} ({item.reason or item.status})"
                            for item in result.monitors_failed_results)
        stats.set_value("monitors/checks", checks)
        stats.set_value("monitors/failed", len(failures))
        if failures:
            stats.set_value("monitors/failures", "; ".join(failures))
        else:
            logger.info("Monitors: %d check(s) passed or skipped", checks)

    def _coverage(self) -> dict[str, float]:
        """Publish each field's coverage (Spidermon's stats keys) and return the rules it is held to:
        every field the item type requires, at MONITOR_MIN_FIELD_COVERAGE, unless the item type's
        ``field_coverage`` expects less; MONITOR_FIELD_COVERAGE (``field`` or ``ItemType/field``) last."""
        stats = stats_of(self.crawler)
        rules: dict[str, float] = {}
        for cls, count in self.items.items():
            name = cls.__name__
            stats.set_value(f"spidermon_item_scraped_count/{name}", count)
            required = _required(cls, self.filled[cls])  # (a dict item: every key it ever carried)
            for field in sorted(set(self.filled[cls]) | set(required)):
                stats.set_value(f"spidermon_item_scraped_count/{name}/{field}", self.filled[cls][field])
                stats.set_value(f"{COVERAGE}/{name}/{field}", self.filled[cls][field] / count)
            for field in required:
                rules[f"{name}/{field}"] = self.min_coverage
            for field, share in getattr(cls, "field_coverage", {}).items():  # what the item type expects
                rules[f"{name}/{field}"] = share
            for key, share in self.coverage_overrides.items():
                field = key.split("/", 1)[1] if key.startswith(name + "/") else key
                if "/" not in field:
                    rules[f"{name}/{field}"] = share
        return rules


class _Runner(MonitorRunner):
    def create_result(self) -> MonitorResult:
        return _LoggedResult()


def _required(cls: type, fields: Any) -> list[str]:
    """The fields an item type requires: its schema's non-nullable ones (all of them for a dict)."""
    names = list(fields or [])
    try:
        schema = arrow_schema(cls)
    except (TypeError, ValueError):
        return names
    return [field.name for field in schema if not field.nullable]


def _shares(settings: BaseSettings, name: str) -> dict[str, float]:
    raw = settings.getdict(name)
    try:
        shares = {str(key): float(value) for key, value in raw.items()}
    except (TypeError, ValueError):
        shares = {}
    if len(shares) != len(raw) or not all(0 <= share <= 1 for share in shares.values()):
        raise InvalidSetting(name, raw, "a dict of field (or ItemType/field) to a share between 0 and 1")
    return shares


def _load(setting: str, path: str, base: type) -> Any:
    try:
        loaded = load_object(path)
    except (ImportError, NameError, ValueError) as exc:
        raise InvalidSetting(setting, path, f"importable {base.__name__} classes ({exc})") from None
    if not (isinstance(loaded, type) and issubclass(loaded, base)):
        raise InvalidSetting(setting, path, f"{base.__name__} subclasses")
    return loaded
