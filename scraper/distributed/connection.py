"""A Redis connection that rides out a Redis restart (which Redis: :func:`scraper.distributed.redis_url`).

Commands that fail on a connection error or timeout are retried with exponential backoff and jitter for up to
``REDIS_RETRY_SECONDS`` (a restarting Redis comes back and nothing is lost: the frontier is in Redis).
Redis unreachable at start-up stops the crawl with an error naming the URL, its password masked.
"""

from __future__ import annotations

import math

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from scrapy.settings import BaseSettings

from scraper.config import CannotStart, get_float
from scraper.secrets import mask_url, redact

BACKOFF_BASE = 0.1  # seconds
BACKOFF_CAP = 5.0  # seconds


class RedisUnavailable(CannotStart):
    """Redis could not be reached at start-up (the message masks the password)."""


def connect(url: str, settings: BaseSettings) -> Redis:
    budget = get_float(settings, "REDIS_RETRY_SECONDS", 60.0, minimum=0)
    timeout = get_float(settings, "REDIS_SOCKET_TIMEOUT", 10.0, minimum=0.1)
    retries = max(1, math.ceil(budget / BACKOFF_CAP) + int(math.log2(BACKOFF_CAP / BACKOFF_BASE)) + 1)
    try:
        server = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30,
                                retry=Retry(ExponentialWithJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE),
                                            retries),
                                retry_on_error=[RedisConnectionError, RedisTimeoutError])
    except ValueError as exc:
        raise RedisUnavailable(f"REDIS_URL {mask_url(url)} is not a Redis URL: {redact(str(exc), url)}") from None
    probe = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        probe.ping()
    except RedisError as exc:
        raise RedisUnavailable(f"Cannot reach Redis at {mask_url(url)}: {redact(str(exc), url)}") from None
    finally:
        probe.close()
    return server
