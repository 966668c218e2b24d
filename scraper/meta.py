"""Request ``meta`` keys, in one place: the per-request overrides a spider may set (documented in the
README's "Per-request meta"), and the keys components pass to one another, with their helpers."""

from __future__ import annotations

from typing import Any

from scrapy import Request

# -- per-request overrides a spider may set ---------------------------------------------------------
DELAY_UNTIL = "delay_until"  # epoch seconds: the scheduler holds the request until then
DONT_ADAPT = "dont_adapt"  # adaptive concurrency neither paces nor measures the request
DONT_ROTATE_PROXY = "dont_rotate_proxy"
DONT_ROTATE_USER_AGENT = "dont_rotate_user_agent"
PROXY_SESSION = "proxy_session"  # requests sharing a session share a proxy (and a user agent)
MAX_PROXY_BAN_RETRIES = "max_proxy_ban_retries"
MAX_RATELIMIT_RETRY_TIMES = "max_ratelimit_retry_times"
RETRY_FOR_SECONDS = "retry_for_seconds"
RETRY_BACKOFF_BASE = "retry_backoff_base"
RETRY_BACKOFF_MAX = "retry_backoff_max"
RETRY_BACKOFF_JITTER = "retry_backoff_jitter"
RAW_ARCHIVE = "raw_archive"  # a file name: the response body is kept byte for byte in the raw archive
PAGE_KIND = "page_kind"  # adaptive concurrency keeps a noise floor per kind of page (default: the callback's name)
# (and Scrapy's own: dont_retry, max_retry_times, download_slot, proxy, ...)

# -- between components -----------------------------------------------------------------------------
#: Set on requests the scheduler hands to the engine. Requests without it were sent by
#: ``engine.download()`` (robots.txt, media pipelines), which re-downloads a returned request at once:
#: those cannot wait in the scheduler, so the retry middleware makes them wait itself.
VIA_SCHEDULER = "_via_scheduler"
DELAY_REASON = "delay_reason"  # why a request waits (``send_back``): the progress line counts retries apart
RETRY_DELAY = "retry_delay"  # the last backoff delay (decorrelated jitter grows from it)
RATELIMIT_TIMES = "retry_ratelimit_times"  # retries on the rate-limit budget (Scrapy's ``retry_times``: errors)
PROXY_BAN_TIMES = "proxy_ban_retry_times"  # retries on another proxy after a ban
ROUTED_VIA = "_rotating_proxy"  # the masked name of the proxy the request went out through
PROXY_TAKEN = "_rotating_proxy_taken"  # the request still holds its proxy's in-flight place
UA_ROTATED = "_ua_rotated"  # (attempt, sticky key) the user-agent middleware last set the UA for
FETCHED_AT = "fetched_at"  # when the raw archive stored the response (its items carry it)
LEASE = "_redis_lease"  # the Redis lease a request was taken under (dropped when serialized)


def via_scheduler(request: Request) -> bool:
    """Whether the scheduler handed this request out (else ``engine.download()`` sent it, and it
    cannot wait in the scheduler)."""
    return bool(request.meta.get(VIA_SCHEDULER))


def send_back(request: Request, until: float, reason: str, **meta: Any) -> Request:
    """A copy of a request that was already scheduled once, to wait in the scheduler until ``until``
    (epoch seconds), holding no download slot meanwhile, for ``reason`` (``paced``, ``proxy``, ...).
    Not a duplicate: it skips the dupefilter."""
    return request.replace(dont_filter=True, meta={**request.meta, **meta, DELAY_UNTIL: until,
                                                   DELAY_REASON: reason})


def delay_reason(request: Request) -> str:
    """``retry`` for a delayed retry (the retry middleware sets only ``delay_until``), else the
    reason it was sent back for."""
    return request.meta.get(DELAY_REASON) or "retry"


def attempts(request: Request) -> int:
    """How many times this request was retried, on any budget."""
    meta = request.meta
    return meta.get("retry_times", 0) + meta.get(RATELIMIT_TIMES, 0) + meta.get(PROXY_BAN_TIMES, 0)
