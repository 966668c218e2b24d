"""Page objects: parsing that knows HTML, not Scrapy. Spiders only crawl."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Page:
    """What a page parser gives its spider: the page's items and the next page to visit (None at the
    end). The ``project`` spider template expects it from ``parse_page``."""

    items: list[Any] = field(default_factory=list)
    next_url: str | None = None
