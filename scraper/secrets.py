"""Masking credentials in URLs and secret settings, so proxy, Redis and cloud passwords never reach
logs, stats or files."""

from __future__ import annotations

import logging
import re
from typing import Any
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


SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN", re.IGNORECASE)


class SecretSettingsFilter(logging.Filter):
    """Masks the values of secret settings (``AWS_SECRET_ACCESS_KEY``, ``*_PASSWORD``, ``*_TOKEN``) in
    Scrapy's "Overridden settings" log line, which prints every Scrapy setting a project changed."""

    def __init__(self, settings: Any) -> None:
        super().__init__()
        self.values = [str(settings.get(name)) for name in settings
                       if SECRET_NAME.search(name) and isinstance(settings.get(name), str) and settings.get(name)]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.values and isinstance(record.args, dict) and isinstance(record.args.get("settings"), str):
            text = record.args["settings"]
            for value in self.values:
                text = text.replace(value, "***")
            record.args = {**record.args, "settings": text}
        return True
