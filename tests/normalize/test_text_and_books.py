from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from scraper.normalize.books import DERIVED_FIELDS, normalize_book, parse_series
from scraper.normalize.text import content_hash, fold, hamming, normalize_text, simhash64, word_count


def test_normalize_text() -> None:
    assert normalize_text("  Tom &amp; Jerry\u00a0 ﬁne\n\t“quotes”  ") == "Tom & Jerry fine “quotes”"
    assert normalize_text("Ｆｕｌｌｗｉｄｔｈ ①") == "Fullwidth 1"  # NFKC


def test_fold_strips_accents_and_case() -> None:
    assert fold("Crème BRÛLÉE  à la Zoë") == "creme brulee a la zoe"
    assert fold("Straße") == "strasse"
    assert fold("Tromsø, Łódź, Ærø, Œuvre") == "tromso, lodz, aero, oeuvre"


@pytest.mark.parametrize("title,expected", [
    ("A Year in Provence (Provence #1)", ("Provence", 1.0)),
    ("Saga, Volume 1 (Saga (Collected Editions) #1)", ("Saga (Collected Editions)", 1.0)),
    ("The Lost Ones (Series, #2.5)", ("Series", 2.5)),
    ("Sapiens (A Brief History)", (None, None)),
    ("No series here", (None, None)),
])
def test_parse_series(title: str, expected: tuple) -> None:
    assert parse_series(title) == expected


def test_word_count() -> None:
    assert word_count("It's the author’s finest — work, isn't it?") == 7
    assert word_count("") == 0


def test_simhash_near_duplicates_are_close_and_different_texts_far() -> None:
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word100", "changed")
    other = " ".join(f"other{i}" for i in range(200))
    assert simhash64(base) == simhash64(base)
    assert hamming(simhash64(base), simhash64(near)) <= 6
    assert hamming(simhash64(base), simhash64(other)) >= 16
    assert 0 <= simhash64(base) < 2**64
    assert simhash64("") == 0 and simhash64("one") == simhash64("ONE")


def test_content_hash_is_stable_and_order_free() -> None:
    a = {"title": "T", "price": Decimal("1.50"), "when": datetime(2026, 1, 1, tzinfo=UTC)}
    b = dict(reversed(list(a.items())))
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "price": Decimal("1.51")})
    assert content_hash(a, exclude=["when"]) == content_hash({**a, "when": None}, exclude=["when"])
    # pinned: a change here silently breaks change detection across crawls
    assert content_hash({"b": "é", "a": 1}) == "09ad9fd2fb648cb2f62141215828ea00a62c299db05d20aa9ade2f527a301cc6"


def book_record(**overrides) -> dict:
    record = dict(url="u", upc="x", title="A Year in Kraków  (Kraków #3)", category="Travel",
                  product_type="Books", price_excl_tax=Decimal("10.00"), price_incl_tax=Decimal("10.00"),
                  tax=Decimal("0.00"), currency="GBP", availability=3, in_stock=True, rating=4,
                  num_reviews=0, description="Caf&eacute; stories  of the\nsea.", image_url="i",
                  scraped_at=datetime(2026, 1, 1, tzinfo=UTC))
    record.update(overrides)
    return record


def test_normalize_book() -> None:
    out = normalize_book(book_record())
    assert out["title"] == "A Year in Kraków (Kraków #3)"
    assert out["description"] == "Café stories of the sea."
    assert out["title_normalized"] == "a year in krakow (krakow #3)"
    assert (out["series"], out["series_number"]) == ("Kraków", 3.0)
    assert out["word_count"] == 5
    assert set(DERIVED_FIELDS) <= set(out)
    assert len(out["content_hash"]) == 64


def test_content_hash_ignores_crawl_time_but_sees_content() -> None:
    first = normalize_book(book_record())
    later = normalize_book(book_record(scraped_at=datetime(2027, 1, 1, tzinfo=UTC)))
    changed = normalize_book(book_record(price_incl_tax=Decimal("11.00")))
    assert first["content_hash"] == later["content_hash"] != changed["content_hash"]


def test_functions_are_picklable_for_worker_processes() -> None:
    for func in (normalize_book, normalize_text, simhash64, content_hash):
        assert pickle.loads(pickle.dumps(func)) is func
