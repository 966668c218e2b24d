from __future__ import annotations

import pytest
from scrapy import Request
from scrapy.core.downloader.handlers.http11 import TunnelError
from scrapy.http import HtmlResponse, Response
from twisted.internet import error

from scraper.proxies.policy import MARKER_SCAN_BYTES, BanPolicy, Verdict

URL = "https://books.example/catalogue/page-1.html"
REQUEST = Request(URL)


def html(status: int = 200, body: bytes = b"<html><body>A book</body></html>") -> HtmlResponse:
    return HtmlResponse(URL, status=status, body=body, request=REQUEST)


@pytest.mark.parametrize("status,expected", [
    (403, (Verdict.BAN, "status_403")),
    (407, (Verdict.BAN, "status_407")),
    (429, (Verdict.RATE_LIMIT, "status_429")),
    (503, (Verdict.RATE_LIMIT, "status_503")),
    (404, (Verdict.PAGE_ERROR, "status_404")),
    (410, (Verdict.PAGE_ERROR, "status_410")),
    (200, (Verdict.OK, "ok")),
    (500, (Verdict.OK, "ok")),  # the proxy delivered; retrying a 5xx is the retry layer's job
])
def test_status_codes(status: int, expected: tuple[Verdict, str]) -> None:
    assert BanPolicy().classify_response(REQUEST, html(status)) == expected


@pytest.mark.parametrize("body", [
    b"<html><body>Please solve the CAPTCHA to continue</body></html>",
    b"<html><body>please solve the captcha</body></html>",
    b"<html><body>Captcha</body></html>",
])
def test_ban_marker_in_a_200_page_is_a_ban_case_insensitively(body: bytes) -> None:
    policy = BanPolicy(ban_markers=["Captcha"])
    assert policy.classify_response(REQUEST, html(body=body)) == (Verdict.BAN, "marker_captcha")


def test_marker_reason_is_safe_for_a_stats_key() -> None:
    policy = BanPolicy(ban_markers=["captcha", "Are you a robot?"])
    body = b"<html><h1>ARE YOU A ROBOT?</h1></html>"
    assert policy.classify_response(REQUEST, html(body=body)) == (Verdict.BAN, "marker_are_you_a_robot_")


def test_page_without_markers_is_ok() -> None:
    policy = BanPolicy(ban_markers=["captcha", "access denied"])
    assert policy.classify_response(REQUEST, html()) == (Verdict.OK, "ok")


def test_no_markers_configured_means_no_marker_bans() -> None:
    assert BanPolicy().classify_response(REQUEST, html(body=b"captcha")) == (Verdict.OK, "ok")


def test_markers_are_ignored_for_non_text_responses() -> None:
    policy = BanPolicy(ban_markers=["captcha"])
    image = Response(URL, status=200, body=b"\x89PNG...captcha...", request=REQUEST)
    assert policy.classify_response(REQUEST, image) == (Verdict.OK, "ok")


def test_markers_are_searched_only_in_the_head_of_the_body() -> None:
    policy = BanPolicy(ban_markers=["captcha"])
    body = b"<html>" + b"x" * MARKER_SCAN_BYTES + b"captcha</html>"
    assert policy.classify_response(REQUEST, html(body=body)) == (Verdict.OK, "ok")


def test_status_decides_before_markers() -> None:
    policy = BanPolicy(ban_markers=["captcha"])
    assert policy.classify_response(REQUEST, html(404, b"captcha")) == (Verdict.PAGE_ERROR, "status_404")


def test_custom_ban_codes_replace_the_defaults() -> None:
    policy = BanPolicy(ban_codes=[401, 403])
    assert policy.classify_response(REQUEST, html(401)) == (Verdict.BAN, "status_401")
    assert policy.classify_response(REQUEST, html(403)) == (Verdict.BAN, "status_403")
    assert policy.classify_response(REQUEST, html(407)) == (Verdict.OK, "ok")


def test_a_rate_limit_code_can_be_made_a_ban() -> None:
    """Some proxy providers answer 429 for their own per-proxy quota."""
    policy = BanPolicy(ban_codes=[403, 429])
    assert policy.classify_response(REQUEST, html(429)) == (Verdict.BAN, "status_429")


@pytest.mark.parametrize("exception", [
    error.ConnectionRefusedError(),
    error.TCPTimedOutError(),
    error.TimeoutError(),
    TunnelError("Could not open CONNECT tunnel with proxy proxy.example:8000 [{'status': 407}]"),
])
def test_proxy_errors_are_bans(exception: BaseException) -> None:
    assert BanPolicy().classify_exception(REQUEST, exception) == (Verdict.BAN, type(exception).__name__)


@pytest.mark.parametrize("exception", [error.ConnectionLost(), error.ConnectionDone(), ValueError("x")])
def test_other_errors_are_soft_failures(exception: BaseException) -> None:
    assert BanPolicy().classify_exception(REQUEST, exception) == (Verdict.FAILURE, type(exception).__name__)
