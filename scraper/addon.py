"""The project's Scrapy add-on: the one place that picks the scheduler, from the settings as the
user gave them (``-s``, Scrapyd's job settings, the environment), before any component is built."""

from __future__ import annotations

from scrapy.settings import BaseSettings

from scraper.distributed import redis_url

LOCAL_SCHEDULER = "scraper.scheduler.DelayingScheduler"
REDIS_SCHEDULER = "scraper.distributed.scheduler.LeasingScheduler"


class Addon:
    """``ADDONS = {"scraper.addon.Addon": 0}``: ``SCHEDULER`` is :data:`REDIS_SCHEDULER` when
    ``REDIS_URL`` (or ``$SCRAPER_REDIS_URL``) is set, else :data:`LOCAL_SCHEDULER`. Both hold
    delayed requests (:class:`scraper.scheduler.HoldsDelayedRequests`), which the retry, adaptive
    and proxy middlewares rely on. A ``SCHEDULER`` set in project settings or on the command line
    wins; the retry middleware then checks that it holds delayed requests too."""

    def update_settings(self, settings: BaseSettings) -> None:
        settings.set("SCHEDULER", REDIS_SCHEDULER if redis_url(settings) else LOCAL_SCHEDULER, "addon")
