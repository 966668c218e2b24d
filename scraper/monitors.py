"""The close-time checks every crawl runs, as a Spidermon suite: a crawl can finish, write every row
and still be wrong (a parser that stopped finding a field, a site that served half its catalogue).
Thresholds are settings; :mod:`scraper.extensions.monitoring` runs the suite and a failed check fails
the run (exit status 7, see :mod:`scraper.outcome`). Users add their own suites with Spidermon's
``SPIDERMON_SPIDER_CLOSE_MONITORS``."""

from __future__ import annotations

from typing import Any

from spidermon import MonitorSuite, monitors
from spidermon.contrib.scrapy.monitors.base import BaseScrapyMonitor
from spidermon.contrib.scrapy.monitors.monitors import FinishReasonMonitor

from scraper.config import get_float
from scraper.distributed import redis_url
from scraper.outcome import Thresholds, deadletter_share
from scraper.spiders import ANNOUNCED_ITEMS

DEFAULT_MIN_ANNOUNCED_SHARE = 0.99
DEFAULT_MAX_ERROR_SHARE = 0.01
DEFAULT_MAX_MALFORMED_SHARE = 0.01
COVERAGE = "spidermon_field_coverage"  # stat prefix, as Spidermon's own field coverage names it


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


@monitors.name("Items against the site's announced count")
class AnnouncedItemsMonitor(BaseScrapyMonitor):
    """Items stored against the count the site announced (the pager's "1000 results"): pages never
    discovered, or forbidden by robots.txt, leave no dead letter behind; this is where they show."""

    @monitors.name("Should store the items the site announced")
    def test_items_match_announced(self) -> None:
        announced = self.data.stats.get(ANNOUNCED_ITEMS)
        settings = self.crawler.settings
        if not announced:
            self.skipTest("the site announced no count")
        if redis_url(settings):
            self.skipTest("one worker of a distributed crawl stores a share of the items")
        if settings.get("REDRIVE_FROM"):
            self.skipTest("a re-drive crawls dead letters, not the catalogue")
        minimum = get_float(settings, "MONITOR_MIN_ANNOUNCED_SHARE", DEFAULT_MIN_ANNOUNCED_SHARE,
                            minimum=0, maximum=1)
        items = self.data.stats.get("item_scraped_count", 0)
        dead = self.data.stats.get("deadletter/count", 0)  # accounted for (and judged) elsewhere
        earlier = self.data.stats.get("resume/already_stored", 0)  # stored by the killed run resumed
        share = _share(items + dead + earlier, announced)
        self.assertGreaterEqual(share, minimum,
                                f"{items} item(s) and {dead} dead letter(s) for {announced} announced"
                                + (f" ({earlier} stored before)" if earlier else "")
                                + f", {share:.1%}; MONITOR_MIN_ANNOUNCED_SHARE={minimum:g}")


@monitors.name("Field coverage")
class FieldCoverageMonitor(BaseScrapyMonitor):
    """Share of items with a value in each field, against ``data.field_coverage_rules``."""

    @monitors.name("Should fill the fields the item type requires")
    def test_field_coverage(self) -> None:
        rules: dict[str, float] = self.data.get("field_coverage_rules") or {}
        if not rules:
            self.skipTest("no item was scraped")
        short = []
        for field, minimum in sorted(rules.items()):
            coverage = self.data.stats.get(f"{COVERAGE}/{field}", 0.0)
            if coverage < minimum:
                short.append(f"{field} {coverage:.1%} < {minimum:.0%}")
        self.assertFalse(short, "fields below their coverage: " + ", ".join(short)
                         + " (MONITOR_MIN_FIELD_COVERAGE, MONITOR_FIELD_COVERAGE)")


@monitors.name("Error shares")
class ErrorSharesMonitor(BaseScrapyMonitor):
    """ERROR log lines, dead letters and malformed pages, each as a share of the pages crawled."""

    def _check(self, what: str, count: int, setting: str, maximum: float, share: float | None = None) -> None:
        pages = self.data.stats.get("response_received_count", 0)
        share = _share(count, pages) if share is None else share
        self.assertLessEqual(share, maximum, f"{count} {what} in {pages} page(s), {share:.1%}; "
                                             f"{setting}={maximum:g}")

    def _maximum(self, setting: str, default: float) -> float:
        return get_float(self.crawler.settings, setting, default, minimum=0, maximum=1)

    @monitors.name("Should log few errors")
    def test_error_share(self) -> None:
        self._check("ERROR lines", self.data.stats.get("log_count/ERROR", 0), "MONITOR_MAX_ERROR_SHARE",
                    self._maximum("MONITOR_MAX_ERROR_SHARE", DEFAULT_MAX_ERROR_SHARE))

    @monitors.name("Should dead-letter few requests")
    def test_dead_letter_share(self) -> None:
        self._check("dead letters", self.data.stats.get("deadletter/count", 0), "CRAWL_MAX_DEADLETTER_SHARE",
                    Thresholds.from_settings(self.crawler.settings).max_deadletter_share,
                    share=deadletter_share(self.data.stats))  # as the exit status judges it

    @monitors.name("Should find few malformed pages")
    def test_malformed_share(self) -> None:
        self._check("malformed pages", self.data.stats.get("pages/malformed", 0), "MONITOR_MAX_MALFORMED_SHARE",
                    self._maximum("MONITOR_MAX_MALFORMED_SHARE", DEFAULT_MAX_MALFORMED_SHARE))


class CloseMonitors(MonitorSuite):
    """Run when the spider closes (the default ``SPIDERMON_SPIDER_CLOSE_MONITORS``)."""

    monitors: Any = [FinishReasonMonitor, AnnouncedItemsMonitor, FieldCoverageMonitor, ErrorSharesMonitor]
