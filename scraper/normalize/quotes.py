"""Normalisation of quote records: runs in worker processes (or in a replay), over plain dicts."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from scraper.normalize.text import content_hash

# What "the same quote" means: not where or when it was seen (url, page, scraped_at).
CONTENT_FIELDS = ("text", "author_name", "author_slug", "author_goodreads_link", "tags")
DERIVED_FIELDS = ("content_hash",)
# Opening mark -> its closing mark. The API wraps every text in “…”; other pairs are stripped too.
QUOTE_MARKS = {"“": "”", '"': '"', "«": "»", "„": "“", "‘": "’", "「": "」"}


def collapse(text: str) -> str:
    """Unicode NFKC (ligatures, no-break and full-width forms) and every whitespace run → one space.
    No HTML unescaping: JSON text is not HTML."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def strip_quote_marks(text: str) -> str:
    """Remove one enclosing pair of quote marks (``“…”`` → ``…``); an apostrophe that ends the text
    (``dogs’``) stays, because only a matching pair is removed."""
    if len(text) >= 2 and QUOTE_MARKS.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Lower case, NFKC, whitespace collapsed; blanks and duplicates dropped; first-seen order kept."""
    seen: dict[str, None] = {}
    for tag in tags:
        clean = collapse(tag).lower()
        if clean:
            seen.setdefault(clean, None)
    return list(seen)


def normalize_quote(record: dict[str, Any]) -> dict[str, Any]:
    """The normalised fields of a quote record (text cleaned, tags canonical, content hash)."""
    out: dict[str, Any] = {
        "text": strip_quote_marks(collapse(record["text"])),
        "author_name": collapse(record["author_name"]),
        "author_slug": record["author_slug"].strip(),
        "tags": normalize_tags(record["tags"]),
    }
    merged = {**record, **out}
    out["content_hash"] = content_hash({name: merged[name] for name in CONTENT_FIELDS})
    return out
