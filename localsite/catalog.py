"""Deterministic synthetic book catalogue: the local site's data and its own ground truth.

Every book is derived from ``(seed, index)`` alone, so a 100k-book site costs nothing until a page is
served, and a test can recompute the exact record the crawler should have produced for any book.
The text is synthetic (word lists below), never copied from the real site, and deliberately contains
the edge cases a parser must survive: titles long enough to be truncated in listings, HTML-special
characters, non-ASCII text, books without a description, out-of-stock books, non-zero tax.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

BOOKS_PER_PAGE = 20
RATING_WORDS = ("One", "Two", "Three", "Four", "Five")

CATEGORIES = (
    "Travel", "Mystery", "Historical Fiction", "Sequential Art", "Classics", "Philosophy",
    "Romance", "Womens Fiction", "Fiction", "Childrens", "Religion", "Nonfiction", "Music",
    "Default", "Science Fiction", "Sports and Games", "Add a comment", "Fantasy", "New Adult",
    "Young Adult", "Science", "Poetry", "Paranormal", "Art", "Psychology", "Autobiography",
    "Parenting", "Adult Fiction", "Humor", "Horror", "History", "Food and Drink",
    "Christian Fiction", "Business", "Biography", "Thriller", "Contemporary", "Spirituality",
    "Academic", "Self Help", "Historical", "Christian", "Suspense", "Short Stories", "Novels",
    "Health", "Politics", "Cultural", "Erotica", "Crime",
)

_ADJECTIVES = (
    "Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Wandering", "Quiet", "Distant",
    "Burning", "Little", "Secret", "Forgotten", "Endless", "Bright", "Hollow", "Northern", "Wild",
    "Paper", "Glass", "Velvet", "Iron", "Midnight", "Summer", "Winter", "Curious", "Lonely",
)
_NOUNS = (
    "Garden", "River", "House", "Orchard", "Lighthouse", "Kingdom", "Letters", "Harbor", "Atlas",
    "Machine", "Country", "Library", "Mountain", "Island", "Station", "Bridge", "Compass", "Forest",
    "Engine", "Theory", "Season", "Daughter", "Stranger", "Circus", "Map", "Clockmaker", "Voyage",
)
_PLACES = (
    "Provence", "Kyoto", "Lisbon", "Marrakesh", "Oslo", "Valparaíso", "Zürich", "Kraków", "Córdoba",
    "Reykjavík", "São Paulo", "Montréal", "Tromsø", "Málaga", "Ålesund", "Nice",
)
_NAMES = ("Ana", "Björn", "Chloé", "Dmitri", "Élodie", "Farid", "Greta", "Hiro", "Inés", "Jonas",
          "Kofi", "Léa", "Mateo", "Noor", "Oskar", "Priya", "Renée", "Søren", "Tomás", "Zoë")
_WORDS = (
    "the", "a", "of", "and", "in", "to", "with", "for", "on", "her", "his", "their", "an", "from",
    "story", "journey", "family", "secret", "world", "life", "years", "city", "night", "love",
    "war", "friend", "memory", "truth", "home", "summer", "winter", "letters", "sea", "light",
    "finds", "discovers", "returns", "loses", "remembers", "builds", "follows", "escapes", "learns",
    "quiet", "dangerous", "unexpected", "bitter", "tender", "strange", "ancient", "modern", "small",
    "village", "harbour", "mountain", "garden", "library", "kitchen", "stranger", "daughter",
    "café", "naïve", "déjà", "façade", "über", "señor", "résumé", "smörgåsbord", "fiancée",
)
# Text with characters that must be entity-escaped in HTML, or are non-ASCII, or both.
_SPECIAL_TITLES = (
    "Tom & Jerry's <Guide> to \"Everything\"",
    "Crème Brûlée: Recipes & Memories",
    "東京 Stories",
    "Αθήνα: A City in Ten Walks",
    "Love, Laughter & Ünicode",
    "It's Only Too Late If You Don't Start",
)
_MORE = " ...more"
_ZERO = Decimal("0.00")
_DESCRIPTION_EXTRAS = (
    "A story of <courage> & hope.", "Critics call it \"unforgettable\".", "Five stars — «superb».",
    "It’s the author’s finest work.",
)


def slugify(text: str) -> str:
    """Django-style slug (ASCII, lower case, hyphens), as the real site's URLs use."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = re.sub(r"[^\w\s-]", "", ascii_text.lower())
    return re.sub(r"[-\s]+", "-", ascii_text).strip("-_") or "book"


@dataclass(frozen=True)
class Category:
    index: int  # 0-based position in CATEGORIES
    name: str

    @property
    def site_id(self) -> int:
        return self.index + 2  # books_1 is the "Books" root, real categories start at 2

    @property
    def path(self) -> str:
        return f"catalogue/category/books/{slugify(self.name)}_{self.site_id}/"


@dataclass(frozen=True)
class Book:
    """One book, as the site shows it. ``description`` is the canonical text (None = absent)."""

    index: int
    site_id: int
    title: str
    category: Category
    upc: str
    price_excl_tax: Decimal
    tax: Decimal
    availability: int
    rating: int
    num_reviews: int
    description: str | None
    image_hash: str

    @property
    def price_incl_tax(self) -> Decimal:
        return self.price_excl_tax + self.tax

    @property
    def slug(self) -> str:
        return f"{slugify(self.title)}_{self.site_id}"

    @property
    def path(self) -> str:
        return f"catalogue/{self.slug}/index.html"

    @property
    def image_path(self) -> str:
        return f"media/cache/{self.image_hash[:2]}/{self.image_hash[2:4]}/{self.image_hash}.jpg"

    def expected_item(self, base_url: str) -> dict[str, object]:
        """The exact record a correct crawler must produce for this book (minus ``scraped_at``)."""
        base = base_url if base_url.endswith("/") else base_url + "/"
        return {
            "url": base + self.path,
            "upc": self.upc,
            "title": self.title,
            "category": self.category.name,
            "product_type": "Books",
            "price_excl_tax": self.price_excl_tax,
            "price_incl_tax": self.price_incl_tax,
            "tax": self.tax,
            "currency": "GBP",
            "availability": self.availability,
            "in_stock": self.availability > 0,
            "rating": self.rating,
            "num_reviews": self.num_reviews,
            "description": self.description or "",
            "image_url": base + self.image_path,
        }


class Catalog:
    """``n`` books from ``seed``. Books are built lazily (and cached), categories eagerly."""

    def __init__(self, n: int = 1000, seed: int = 1) -> None:
        if n < 1:
            raise ValueError("a catalogue needs at least one book")
        self.n = n
        self.seed = seed
        self.categories = tuple(Category(i, name) for i, name in enumerate(CATEGORIES))
        rng = random.Random(f"{seed}:categories")
        # Skewed like a real shop: a few big categories, a long tail.
        weights = [1.0 / (1 + i) ** 0.8 for i in range(len(CATEGORIES))]
        self._category_of = rng.choices(range(len(CATEGORIES)), weights=weights, k=n)
        self._by_category: dict[int, list[int]] = {}
        for index, cat in enumerate(self._category_of):
            self._by_category.setdefault(cat, []).append(index)
        self.book = lru_cache(maxsize=4096)(self._make_book)

    @property
    def pages(self) -> int:
        return -(-self.n // BOOKS_PER_PAGE)

    def __iter__(self):
        return (self._make_book(i) for i in range(self.n))

    def books_in(self, category: Category) -> list[int]:
        return self._by_category.get(category.index, [])

    def index_of_site_id(self, site_id: int) -> int | None:
        index = self.n - site_id  # like the real site: the first book listed has the highest id
        return index if 0 <= index < self.n else None

    def _make_book(self, index: int) -> Book:
        rng = random.Random(f"{self.seed}:book:{index}")
        title = _title(rng, index)
        pence = rng.randrange(1000, 6000)
        price = Decimal(f"{pence // 100}.{pence % 100:02d}")  # always two places, as printed
        tax = _ZERO if rng.random() < 0.7 else (price * Decimal("0.2")).quantize(_ZERO)
        availability = 0 if rng.random() < 0.05 else rng.randint(1, 22)
        description = None if rng.random() < 0.03 else _description(rng)
        digest = hashlib.md5(f"{self.seed}:{index}".encode()).hexdigest()
        return Book(
            index=index,
            site_id=self.n - index,
            title=title,
            category=self.categories[self._category_of[index]],
            upc=digest[:16],
            price_excl_tax=price,
            tax=tax,
            availability=availability,
            rating=rng.randint(1, 5),
            num_reviews=0 if rng.random() < 0.8 else rng.randint(1, 40),
            description=description,
            image_hash=hashlib.md5(f"img:{self.seed}:{index}".encode()).hexdigest(),
        )


def _title(rng: random.Random, index: int) -> str:
    roll = rng.random()
    if roll < 0.04:
        return _SPECIAL_TITLES[index % len(_SPECIAL_TITLES)]
    if roll < 0.20:  # series, e.g. "A Year in Provence (Provence #1)"
        place = rng.choice(_PLACES)
        return f"A Year in {place} ({place} #{rng.randint(1, 9)})"
    if roll < 0.40:  # long: truncated with "..." in listings
        return (f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} of {rng.choice(_NAMES)}: "
                f"A Novel of {_plural(rng.choice(_NOUNS))} and {_plural(rng.choice(_NOUNS))}")
    if roll < 0.55:
        return f"{rng.choice(_NAMES)}'s {rng.choice(_NOUNS)}"
    return f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


def _description(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(3, 9)):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
        sentences.append(" ".join(words).capitalize() + ".")
    if rng.random() < 0.3:
        sentences.insert(rng.randrange(len(sentences)), rng.choice(_DESCRIPTION_EXTRAS))
    return " ".join(sentences)


def rendered_description(text: str) -> str:
    """The description as the site prints it: ragged whitespace and the real site's ``...more`` tail."""
    return text.replace(". ", ".  \n    ", 2) + _MORE
