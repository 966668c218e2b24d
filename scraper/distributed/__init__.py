"""Scale-out on Redis: a shared request frontier with leases, a shared dupefilter, and a scheduler
(a scrapy-redis subclass) that the add-on picks when ``REDIS_URL`` is set. See docs/distributed.md."""

from __future__ import annotations

import os
from collections.abc import Mapping

from scrapy.settings import BaseSettings

ENV_VAR = "SCRAPER_REDIS_URL"


def redis_url(settings: BaseSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The Redis that distributed mode uses (``REDIS_URL``, else ``$SCRAPER_REDIS_URL``), or None:
    not distributed. Importing this imports no Redis client."""
    env = os.environ if environ is None else environ
    return settings.get("REDIS_URL") or env.get(ENV_VAR) or None
