"""How a crawl ended, as an exit status: a crawl that lost data, stopped early or crawled nothing must
never look like one that succeeded, to a shell, a scheduler or a reader of its dataset. Pure: a
function of the crawl's final stats and close reason, shared by the ``crawl`` command (exit code), the
closing log line and the Parquet manifest (``complete`` and ``_SUCCESS``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scrapy.settings import BaseSettings

from scraper.config import get_float, get_int

OK = 0
NOT_STARTED = 1  # a bad setting or argument (one ERROR line names it), or a component failed to load
USAGE = 2  # Scrapy's own: the command line itself is wrong
STOPPED = 3  # closed before the end: shutdown (SIGINT/SIGTERM, Scrapyd cancel), CLOSESPIDER_*, an error
LOST = 4  # items were lost: they could not be written
DEAD_LETTERS = 5  # more requests dead-lettered than CRAWL_MAX_DEADLETTER_SHARE allows
TOO_FEW_ITEMS = 6  # fewer items than CRAWL_MIN_ITEMS: the start was unreachable, forbidden, or empty
MONITORS_FAILED = 7  # a close-time monitor check failed (scraper.monitors): coverage, announced count, ...

DEFAULT_MIN_ITEMS = 1
DEFAULT_MAX_DEADLETTER_SHARE = 0.01


@dataclass(frozen=True)
class Thresholds:
    min_items: int = DEFAULT_MIN_ITEMS
    max_deadletter_share: float = DEFAULT_MAX_DEADLETTER_SHARE

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Thresholds:
        return cls(get_int(settings, "CRAWL_MIN_ITEMS", DEFAULT_MIN_ITEMS, minimum=0),
                   get_float(settings, "CRAWL_MAX_DEADLETTER_SHARE", DEFAULT_MAX_DEADLETTER_SHARE,
                             minimum=0, maximum=1))


@dataclass(frozen=True)
class Outcome:
    code: int
    cause: str  # what a reader of the last log line needs, "" when the crawl succeeded
    lost: int = 0  # items that could not be written
    dead_letters: int = 0

    @property
    def complete(self) -> bool:
        """Nothing was lost: what ``_SUCCESS`` and the manifest's ``complete`` promise."""
        return self.code == OK and not self.lost and not self.dead_letters


def judge(stats: Mapping[str, Any], reason: str, thresholds: Thresholds) -> Outcome:
    """The outcome of a crawl closed for ``reason`` with these final ``stats``. When several causes
    apply, the first of: items lost, stopped early, too few items, too many dead letters, a failed
    monitor check."""
    lost = (stats.get("parquet/lost_rows", 0) + stats.get("outcome/item_errors", 0)
            + stats.get("deadletter/lost", 0))
    dead = stats.get("deadletter/count", 0)
    items = stats.get("item_scraped_count", 0)

    def outcome(code: int, cause: str) -> Outcome:
        return Outcome(code, cause, lost, dead)

    if lost:
        return outcome(LOST, f"{lost} item(s) or dead letter(s) could not be written (see the ERROR lines above)")
    if reason != "finished":
        return outcome(STOPPED, f"closed before the end (reason: {reason})")
    if items < thresholds.min_items:
        return outcome(TOO_FEW_ITEMS, f"{items} item(s), CRAWL_MIN_ITEMS={thresholds.min_items}: "
                                      + _why_nothing(stats))
    share = deadletter_share(stats)
    if dead and share > thresholds.max_deadletter_share:
        return outcome(DEAD_LETTERS, f"{dead} request(s) dead-lettered, {share:.1%} of pages, "
                                     f"CRAWL_MAX_DEADLETTER_SHARE={thresholds.max_deadletter_share:g}")
    if failed := stats.get("monitors/failed", 0):
        return outcome(MONITORS_FAILED, f"{failed} monitor check(s) failed: {stats.get('monitors/failures', '')}")
    return outcome(OK, "")


def deadletter_share(stats: Mapping[str, Any]) -> float:
    """Dead letters as a share of every request that ended: answered pages plus dead letters (a
    request that never got an answer is not among the pages)."""
    dead = stats.get("deadletter/count", 0)
    return dead / max(1, stats.get("response_received_count", 0) + dead)


def _why_nothing(stats: Mapping[str, Any]) -> str:
    """What the stats say about a crawl that found (almost) nothing."""
    reasons = []
    if forbidden := stats.get("robotstxt/forbidden", 0):
        reasons.append(f"robots.txt forbade {forbidden} request(s)")
    errors = {key.rsplit("/", 1)[-1].rsplit(".", 1)[-1]: value for key, value in stats.items()
              if key.startswith("downloader/exception_type_count/")}
    if errors:
        reasons.append("downloads failed (" + ", ".join(f"{n}x {name}" for name, n in sorted(errors.items())) + ")")
    if offsite := stats.get("offsite/filtered", 0):
        reasons.append(f"{offsite} request(s) filtered as offsite")
    if not stats.get("response_received_count", 0) and not reasons:
        reasons.append("no page was crawled")
    return "; ".join(reasons) or f"{stats.get('response_received_count', 0)} page(s) crawled, none held an item"
