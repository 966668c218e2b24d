from __future__ import annotations

import pickle
import unicodedata
from datetime import UTC, datetime

import pytest

from localsite.quotes import QuoteCatalog
from scraper.normalize.quotes import collapse, normalize_quote, normalize_tags, strip_quote_marks

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def record(**changes: object) -> dict:
    base = {"url": "http://h/api/quotes?page=1", "page": 1, "text": "“A quote.”", "author_name": "Ada",
            "author_slug": "Ada", "author_goodreads_link": None, "tags": ["x"], "scraped_at": NOW,
            "content_hash": None}
    return {**base, **changes}


@pytest.mark.parametrize("raw,clean", [
    ("“The world as we have created it.”", "The world as we have created it."),
    ('"Straight quotes."', "Straight quotes."),
    ("«Guillemets»", "Guillemets"),
    ("„Low-high“", "Low-high"),
    ("“ padded inside ”", "padded inside"),
    ("No marks at all.", "No marks at all."),
    ("“It belongs to the dogs’”", "It belongs to the dogs’"),  # the apostrophe is not a mark
    ("“Unbalanced.", "“Unbalanced."),  # only a matching pair is removed
    ("“Nested “inner” quote.”", "Nested “inner” quote."),
])
def test_strip_quote_marks(raw: str, clean: str) -> None:
    assert strip_quote_marks(collapse(raw)) == clean


def test_collapse_is_nfkc_and_whitespace_but_not_html() -> None:
    assert collapse("  ﬁnd\u00a0the\n\tfire  ") == "find the fire"
    assert collapse("Ｆｕｌｌ ２") == "Full 2"
    assert collapse("Chloe\u0301") == "Chloé"  # decomposed accents are composed
    assert collapse("Tom &amp; Jerry") == "Tom &amp; Jerry"  # JSON text is not HTML


def test_tags_lower_case_blank_and_duplicates_dropped_order_kept() -> None:
    assert normalize_tags(["Love", " ", "life", "LOVE", "NAÏVETÉ", "", "naïveté", " hope "]) == \
        ["love", "life", "naïveté", "hope"]
    assert normalize_tags([]) == []


def test_content_hash_is_about_the_quote_not_where_or_when_it_was_seen() -> None:
    a = normalize_quote(record())
    assert set(a) == {"text", "author_name", "author_slug", "tags", "content_hash"}
    moved = normalize_quote(record(url="http://other/api/quotes?page=7", page=7,
                                   scraped_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert moved["content_hash"] == a["content_hash"]
    same_after_cleaning = normalize_quote(record(text="«A  quote.»", tags=["X", "x"]))
    assert same_after_cleaning["content_hash"] == a["content_hash"]
    for change in ({"text": "“Another.”"}, {"author_name": "Bob"}, {"tags": ["y"]},
                   {"author_goodreads_link": "https://www.goodreads.com/author/show/1"}):
        assert normalize_quote(record(**change))["content_hash"] != a["content_hash"], change
    assert len(a["content_hash"]) == 64


@pytest.mark.parametrize("seed", [1, 5])
def test_recovers_the_generators_clean_values(seed: int) -> None:
    """The catalogue dirties clean text on purpose; normalising must give the clean text back."""
    base = "http://127.0.0.1:1/"
    for quote in QuoteCatalog(300, seed=seed):
        assert unicodedata.normalize("NFKC", quote.text) == quote.text  # the clean text is stable
        parsed = {**quote.parsed_item(base), "scraped_at": NOW, "content_hash": None}
        out = normalize_quote(parsed)
        expected = quote.expected_item(base)
        assert {k: out[k] for k in ("text", "author_name", "author_slug", "tags")} == \
            {k: expected[k] for k in ("text", "author_name", "author_slug", "tags")}, quote.index


def test_generator_covers_the_edge_cases() -> None:
    quotes = list(QuoteCatalog(300, seed=1))
    raw = [q.raw_text for q in quotes]
    assert any("\ufb01" in t for t in raw) and any("\u00a0" in t for t in raw)
    assert any(t.startswith("«") for t in raw) and any(t.startswith('"') for t in raw)
    assert any(not t.startswith(("“", "«", '"', "„", " ")) for t in raw)
    assert any(q.text.endswith("’") for q in quotes)
    assert any(q.tags == () for q in quotes) and any(len(q.raw_tags) > len(q.tags) for q in quotes)
    assert any(q.raw_author_name != q.author.name for q in quotes)
    assert any(q.author.goodreads_link is None for q in quotes)
    assert any(q.author.goodreads_link == "" for q in quotes)
    assert any(not t.isascii() for t in (q.text for q in quotes))


def test_normaliser_is_picklable_for_the_process_pool() -> None:
    assert pickle.loads(pickle.dumps(normalize_quote)) is normalize_quote
