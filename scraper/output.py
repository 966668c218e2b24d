"""Where a crawl's files go: the dataset URI template, filled once per crawl, and side files.

Every component that writes beside the dataset (dead letters, manifests, raw responses) derives its
location here, from ``PARQUET_URI``, with one crawl start time, so ``%(time)s`` names one directory.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scrapy.crawler import Crawler

# %(run)s: two crawls started in the same second (two Scrapyd jobs) never share a dataset
DEFAULT_PARQUET_URI = "data/%(name)s/%(time)s-%(run)s/"
_START_TIME_ATTR = "_scraper_start_time"
_RUN_ATTR = "_scraper_run"


def crawl_time(crawler: Crawler) -> datetime:
    """The crawl's start time (UTC), the same for every caller."""
    when = getattr(crawler, _START_TIME_ATTR, None)
    if when is None:
        when = datetime.now(timezone.utc)
        setattr(crawler, _START_TIME_ATTR, when)
    return when


def crawl_run(spider: Any) -> str:
    """Scrapyd's job id when there is one, else a short id of this crawl's own, the same for every caller."""
    job = getattr(spider, "_job", None)
    if job:
        return str(job)
    run = getattr(spider, _RUN_ATTR, None)
    if run is None:
        run = uuid.uuid4().hex[:8]
        setattr(spider, _RUN_ATTR, run)
    return run


def item_type_name(item_cls: type) -> str:
    """``BookItem`` → ``book``; ``QuoteAPIItem`` → ``quote_api``."""
    name = item_cls.__name__.removesuffix("Item") or item_cls.__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def format_uri(template: str, spider: Any, start_time: datetime, item: str) -> str:
    """Fill ``template`` like Scrapy fills feed URIs (spider attributes, ``time``) plus ``item`` and
    ``run`` (:func:`crawl_run`)."""
    params = {k: getattr(spider, k, None) for k in dir(spider) if not k.startswith("__")}
    params["time"] = start_time.replace(microsecond=0).isoformat().replace("+00:00", "").replace(":", "-")
    params["item"] = item
    params["run"] = crawl_run(spider)
    return template % params


def parquet_template(crawler: Crawler) -> str:
    return (crawler.settings.get("PARQUET_URI", DEFAULT_PARQUET_URI) or "").strip()


def sidecar_uri(crawler: Crawler, name: str) -> str:
    """A location beside the dataset(s) for ``name`` (e.g. ``_deadletter``): inside the dataset
    directory, or next to the per-item directories when ``PARQUET_URI`` has ``%(item)s``. Names
    starting with ``_`` are skipped by Parquet dataset readers."""
    template = parquet_template(crawler) or DEFAULT_PARQUET_URI
    start = crawl_time(crawler)
    if "%(item)s" in template:
        return format_uri(template, crawler.spider, start, name)
    return join_uri(format_uri(template, crawler.spider, start, ""), name)


def side_location(crawler: Crawler, uri_template: str, name: str) -> str:
    """Where a side output (dead letters, raw archive) goes: its own URI template when the user set
    one (placeholders as in ``PARQUET_URI``), else the directory ``name`` beside the dataset."""
    if uri_template:
        return format_uri(uri_template, crawler.spider, crawl_time(crawler), "")
    return sidecar_uri(crawler, name)


def join_uri(base: str, name: str) -> str:
    """``base``/``name``, keeping a URI's query string (``s3://b/p?endpoint_override=…``) at the end."""
    if "://" not in base:
        return base.rstrip("/") + "/" + name
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))
