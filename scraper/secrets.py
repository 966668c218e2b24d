"""Masking credentials in URLs, so proxy and Redis passwords never reach logs, stats or files."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_url(url: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    masked = f"{user}:***@{hostport}" if user else f"***@{hostport}"
    return urlunsplit(parts._replace(netloc=masked))


def redact(text: str, *urls: str) -> str:
    """``text`` with every password (and full URL) of ``urls`` masked: for third-party error
    messages that echo a URL back verbatim."""
    for url in urls:
        masked = mask_url(url)
        text = text.replace(url, masked)
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            text = text.replace(password, "***")
    return text
