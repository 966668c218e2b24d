"""Normalisation of book records: runs in worker processes, over plain dicts."""

from __future__ import annotations

import re
from typing import Any

from scraper.normalize.text import content_hash, fold, normalize_text, simhash64, word_count

TEXT_FIELDS = ("title", "category", "description", "product_type")
DERIVED_FIELDS = ("title_normalized", "series", "series_number", "content_hash",
                  "description_simhash", "word_count")
# Volatile or derived: not part of what "the book's content changed" means.
_NOT_CONTENT = ("scraped_at", *DERIVED_FIELDS)
# "A Year in Provence (Provence #1)", "Saga, Volume 1 (Saga (Collected Editions) #1)", "(Series, #2.5)"
_SERIES = re.compile(r"\((?P<series>.+?),?\s*#(?P<number>\d+(?:\.\d+)?)\)\s*$")


def parse_series(title: str) -> tuple[str | None, float | None]:
    """``"A Year in Provence (Provence #1)"`` → ``("Provence", 1.0)``; no series → ``(None, None)``."""
    match = _SERIES.search(title)
    if not match:
        return None, None
    return match["series"].strip(), float(match["number"])


def normalize_book(record: dict[str, Any]) -> dict[str, Any]:
    """The normalised fields of a book record (text cleaned, derived fields added)."""
    out: dict[str, Any] = {name: normalize_text(record[name]) for name in TEXT_FIELDS}
    merged = {**record, **out}
    series, number = parse_series(out["title"])
    out["title_normalized"] = fold(out["title"])
    out["series"] = series
    out["series_number"] = number
    out["description_simhash"] = simhash64(out["description"])
    out["word_count"] = word_count(out["description"])
    out["content_hash"] = content_hash(merged, exclude=_NOT_CONTENT)
    return out
