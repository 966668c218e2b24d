"""``s3://`` outputs with Scrapy's own ``AWS_*`` settings and bounded waits. pyarrow's
``FileSystem.from_uri`` reads credentials and endpoint only from the URI and the environment, and
waits on an unreachable endpoint with default timeouts and retries (one item blocked ~6-12 s); a
project's ``AWS_ENDPOINT_URL`` went to amazonaws.com. The URI's own credentials and query keep
precedence over the settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow.fs as pafs

CONNECT_TIMEOUT = 5.0  # s
REQUEST_TIMEOUT = 30.0  # s
ATTEMPTS = 3  # per call, first included
QUERY_OPTIONS: dict[str, Callable[[str], Any]] = {"endpoint_override": str, "scheme": str, "region": str,
                 "allow_bucket_creation": lambda v: v.lower() == "true",
                 "allow_bucket_deletion": lambda v: v.lower() == "true"}


def s3_filesystem(uri: str, settings: Mapping[str, Any] | None = None) -> tuple[pafs.S3FileSystem, str]:
    """An S3 filesystem and ``bucket/path`` for ``s3://[key:secret@]bucket/path[?options]``."""
    settings = settings or {}
    parts = urlsplit(uri)
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "request_timeout": REQUEST_TIMEOUT,
                               "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS)}
    access, secret = settings.get("AWS_ACCESS_KEY_ID"), settings.get("AWS_SECRET_ACCESS_KEY")
    if parts.username is not None:
        access, secret = unquote(parts.username), unquote(parts.password or "")
    if access and secret:
        options.update(access_key=access, secret_key=secret)
        if settings.get("AWS_SESSION_TOKEN") and parts.username is None:
            options["session_token"] = settings.get("AWS_SESSION_TOKEN")
    endpoint = settings.get("AWS_ENDPOINT_URL")
    if endpoint:
        where = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=where.netloc, scheme=where.scheme)
    if settings.get("AWS_USE_SSL") in (False, "False", "false", "0", 0):
        options["scheme"] = "http"
    if settings.get("AWS_REGION_NAME"):
        options["region"] = settings.get("AWS_REGION_NAME")
    for name, value in parse_qsl(parts.query):
        if name not in QUERY_OPTIONS:
            raise ValueError(f"unexpected query parameter in an S3 URI: {name!r} "
                             f"(known: {', '.join(QUERY_OPTIONS)})")
        options[name] = QUERY_OPTIONS[name](value)
    bucket = parts.netloc.rpartition("@")[2]
    return pafs.S3FileSystem(**options), f"{bucket}{parts.path}".rstrip("/")
