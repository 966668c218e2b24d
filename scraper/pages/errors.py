"""The one exception page objects raise for a page they cannot turn into a valid item."""

from __future__ import annotations


class PageParseError(ValueError):
    """A page lacks (or garbles) a required field. Spiders let it propagate; a spider middleware
    counts it, logs one line naming the URL and field, and the crawl goes on."""

    def __init__(self, url: str, field: str, reason: str) -> None:
        super().__init__(f"{url}: field {field!r}: {reason}")
        self.url = url
        self.field = field
        self.reason = reason
