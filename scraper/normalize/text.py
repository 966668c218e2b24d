"""Pure text normalisation helpers: picklable module-level functions, no Scrapy, no I/O.

These run in worker processes (see :mod:`scraper.normalize.pool`), so they take and return plain
Python values.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SIMHASH_BITS = 64
_SHINGLE = 3  # words per shingle
# Letters NFKD does not decompose into base + accent, so stripping combining marks misses them.
_UNDECOMPOSABLE = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
                                 "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D",
                                 "þ": "th", "Þ": "TH", "ı": "i", "ħ": "h", "Ħ": "H"})


def normalize_text(text: str) -> str:
    """HTML-unescape, Unicode NFKC, and collapse every run of whitespace to one space."""
    return " ".join(unicodedata.normalize("NFKC", html.unescape(text)).split())


def fold(text: str) -> str:
    """For matching: NFKD, accents stripped, case-folded, whitespace collapsed."""
    decomposed = unicodedata.normalize("NFKD", text).translate(_UNDECOMPOSABLE)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def word_count(text: str) -> int:
    return len(words(text))


def simhash64(text: str) -> int:
    """64-bit SimHash of the text's word 3-shingles (Charikar): near-duplicates differ in few bits.

    Returns an unsigned 64-bit integer; 0 for an empty text.
    """
    tokens = words(fold(text))
    if not tokens:
        return 0
    if len(tokens) < _SHINGLE:
        shingles: Iterable[str] = [" ".join(tokens)]
    else:
        shingles = (" ".join(tokens[i:i + _SHINGLE]) for i in range(len(tokens) - _SHINGLE + 1))
    weights = [0] * _SIMHASH_BITS
    for shingle in shingles:
        value = int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")
        for bit in range(_SIMHASH_BITS):
            weights[bit] += 1 if value >> bit & 1 else -1
    return sum(1 << bit for bit, weight in enumerate(weights) if weight > 0)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def content_hash(record: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """Stable SHA-256 (hex) of a record's values, keys sorted: equal content ⇒ equal hash across
    crawls, whatever the field order. Decimals hash by value with their scale (``"1.50"``)."""
    skip = set(exclude)
    canonical = {k: v for k, v in record.items() if k not in skip}
    payload = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                         default=_json_default)
    return hashlib.sha256(payload.encode()).hexdigest()


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot hash a {type(value).__name__}")
