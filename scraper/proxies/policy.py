"""Whose fault is it? Classifies a response or an exception seen through a proxy.

Only a ban cools the proxy down: a site's rate limit or a missing page is not the proxy's fault.
Replaceable with ``PROXY_POLICY``. Verdicts and what a replacement provides: docs/proxies.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from scrapy import Request
from scrapy.core.downloader.handlers.http11 import TunnelError
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError, DownloadTimeoutError
from scrapy.http import Response, TextResponse
from twisted.internet import error

DEFAULT_BAN_CODES = (403, 407)
RATE_LIMIT_CODES = (429, 503)
PAGE_ERROR_CODES = (404, 410)
#: Errors that happen between us and the proxy, or that a dead or overloaded proxy causes (Scrapy
#: 2.19 wraps Twisted's errors in its own ``Download*`` exceptions; other handlers may not).
PROXY_ERRORS: tuple[type[BaseException], ...] = (
    DownloadConnectionRefusedError, DownloadTimeoutError, CannotResolveHostError,
    error.ConnectionRefusedError, error.ConnectError, error.TCPTimedOutError, error.TimeoutError,
    error.DNSLookupError, error.NoRouteError, TunnelError,
)
#: Bytes of a response body searched for ban markers (ban pages are small; pages can be large).
MARKER_SCAN_BYTES = 64 * 1024


class Verdict(str, Enum):
    OK = "ok"
    BAN = "ban"
    RATE_LIMIT = "rate_limit"
    PAGE_ERROR = "page_error"
    FAILURE = "failure"


class BanPolicy:
    def __init__(self, ban_codes: Iterable[int] = DEFAULT_BAN_CODES,
                 ban_markers: Iterable[str] = ()) -> None:
        self.ban_codes = frozenset(ban_codes)
        self.ban_markers = tuple(marker.lower() for marker in ban_markers if marker)

    def classify_response(self, request: Request, response: Response) -> tuple[Verdict, str]:
        """The verdict and a short reason (used in stats keys: no URLs, no secrets)."""
        status = response.status
        if status in self.ban_codes:
            return Verdict.BAN, f"status_{status}"
        if status in RATE_LIMIT_CODES:
            return Verdict.RATE_LIMIT, f"status_{status}"
        if status in PAGE_ERROR_CODES:
            return Verdict.PAGE_ERROR, f"status_{status}"
        marker = self._marker_in(response)
        if marker is not None:
            return Verdict.BAN, f"marker_{marker}"
        return Verdict.OK, "ok"

    def classify_exception(self, request: Request, exception: BaseException) -> tuple[Verdict, str]:
        if isinstance(exception, PROXY_ERRORS):
            return Verdict.BAN, type(exception).__name__
        return Verdict.FAILURE, type(exception).__name__

    def _marker_in(self, response: Response) -> str | None:
        if not self.ban_markers or not isinstance(response, TextResponse):
            return None
        head = response.body[:MARKER_SCAN_BYTES].lower()
        for marker in self.ban_markers:
            if marker.encode() in head:
                return "".join(c if c.isalnum() else "_" for c in marker)
        return None
