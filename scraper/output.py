"""Where a crawl's files go: the dataset URI template, filled once per crawl, and side files.

Every component that writes beside the dataset (dead letters, manifests, raw responses) derives its
location here, from ``PARQUET_URI``, with one crawl start time, so ``%(time)s`` names one directory.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scrapy.crawler import Crawler
from scrapy.settings import BaseSettings

from scraper.config import InvalidSetting

# %(run)s: two crawls started in the same second (two Scrapyd jobs) never share a dataset
DEFAULT_PARQUET_URI = "data/%(name)s/%(time)s-%(run)s/"
_START_TIME_ATTR = "_scraper_start_time"
_RUN_ATTR = "_scraper_run"
JOB_IDENTITY = "scraper-run.json"
_IDENTITY_ATTR = "_scraper_identity"  # on the crawl's settings object


def crawl_time(crawler: Crawler) -> datetime:
    """The crawl's start time (UTC), the same for every caller; a resumed ``JOBDIR`` crawl's first start."""
    when = getattr(crawler, _START_TIME_ATTR, None)
    if when is None:
        when = datetime.fromisoformat(_job_identity(crawler.settings)["time"])
        setattr(crawler, _START_TIME_ATTR, when)
    return when


def crawl_run(spider: Any) -> str:
    """Scrapyd's job id when there is one, else a short id of this crawl's own (kept across ``JOBDIR``
    resumes), the same for every caller."""
    job = getattr(spider, "_job", None)
    if job:
        return str(job)
    run = getattr(spider, _RUN_ATTR, None)
    if run is None:
        crawler = getattr(spider, "crawler", None)
        run = _job_identity(crawler.settings)["run"] if crawler is not None else uuid.uuid4().hex[:8]
        setattr(spider, _RUN_ATTR, run)
    return run


def resumed(settings: BaseSettings) -> bool:
    """Whether this crawl resumes a ``JOBDIR`` crawl that ran before (then it continues its dataset)."""
    return bool(_job_identity(settings).get("resumed"))


def killed_before(settings: BaseSettings) -> bool:
    """Whether this crawl resumes a ``JOBDIR`` crawl whose last run never closed (``kill -9``, a crash):
    Scrapy's queue and seen-set in the job directory then do not say what was done."""
    identity = _job_identity(settings)
    return bool(identity.get("resumed")) and identity.get("previous_close") is None


def mark_closed(settings: BaseSettings, reason: str) -> None:
    """Record in the job directory that this run closed cleanly (a graceful stop included)."""
    jobdir = settings.get("JOBDIR")
    if jobdir:
        _save(Path(jobdir) / JOB_IDENTITY, _job_identity(settings), closed=reason)


def _save(path: Path, identity: dict[str, Any], closed: str | None) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({"time": identity["time"], "run": identity["run"], "closed": closed}))
    temp.replace(path)


def _job_identity(settings: BaseSettings) -> dict[str, Any]:
    """The start time and run id naming this crawl's dataset; with ``JOBDIR``, those of the job's first
    run, kept in ``JOBDIR/scraper-run.json``, so a resumed crawl writes into the same dataset."""
    cached = getattr(settings, _IDENTITY_ATTR, None)
    if cached is not None:
        return cached
    identity: dict[str, Any] = {"time": datetime.now(UTC).isoformat(), "run": uuid.uuid4().hex[:8]}
    jobdir = settings.get("JOBDIR")
    if jobdir:
        path = Path(jobdir) / JOB_IDENTITY
        try:
            saved = json.loads(path.read_text())
            identity = {"time": saved["time"], "run": saved["run"], "resumed": True,
                        "previous_close": saved.get("closed")}
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidSetting("JOBDIR", jobdir,
                                 f"a job directory whose {JOB_IDENTITY} is readable ({exc})") from None
        _save(path, identity, closed=None)  # running: until a clean close says otherwise
    setattr(settings, _IDENTITY_ATTR, identity)
    return identity


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
