"""``python -m localsite.quotes``: a local, deterministic copy of quotes.toscrape.com's JSON API.

``GET /api/quotes?page=N`` answers like the real API (``has_next``, ``page``, ten ``quotes`` with
``author {name, slug, goodreads_link}``, ``tags`` and ``text``, ``tag``, ``top_ten_tags``), from
synthetic quotes derived from ``(seed, index)``. Served by the books site's :class:`FaultyServer`, so
every fault knob (latency, rate limit, 429/5xx/drops, ``--malformed-rate``) and ``/_stats``,
``/_control``, ``/_reset`` work here too.

:class:`QuoteCatalog` is the ground truth: for every quote it knows the raw record the API serves, the
item a correct parser builds from it, and the clean values a correct normaliser must recover — the
raw text is the clean text made dirty on purpose (curly, straight or no quote marks, ligatures,
non-breaking and doubled spaces, decomposed accents, upper-case and duplicate tags, empty tag
lists, authors without a Goodreads link), so the expectations never come from the code under test.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

QUOTES_PER_PAGE = 10
GOODREADS = "https://www.goodreads.com"
API_PATH = "api/quotes"

_FIRST = ("Ana", "Björn", "Chloé", "Dmitri", "Élodie", "Farid", "Greta", "Hiro", "Inés", "Jonas",
          "Kofi", "Léa", "Mateo", "Noor", "Søren", "Zoë", "J.K.", "Mary Ann")
_LAST = ("Andersen", "Bergström", "Castillo", "Dubois", "Eriksen", "Fournier", "García Márquez",
         "Hoffmann", "Ibáñez", "Jansen", "Kowalski", "Lindqvist", "Møller", "Nakamura", "O'Neil",
         "Petrović")
_AUTHORS = 30
_NO_LINK = {3: None, 7: ""}  # author index -> what the API gives instead of a link
_WORDS = (
    "the", "a", "of", "and", "to", "in", "is", "we", "you", "our", "what", "never", "always",
    "life", "love", "world", "truth", "time", "heart", "mind", "light", "silence", "friend",
    "find", "final", "fire", "brief", "fiction", "difficult", "first", "believe", "remember",
    "change", "dream", "fear", "hope", "choose", "learn", "forget", "wonder", "courage",
    "café", "naïve", "über", "Zürich", "déjà", "東京", "It’s", "isn’t", "—", "🙂",
)
_ENDINGS = (".", ".", ".", "?", "!")
TAGS = ("love", "life", "inspirational", "humor", "truth", "books", "friendship", "hope",
        "change", "courage", "naïveté", "café-culture", "wisdom", "dreams", "fear")
# Opening mark -> closing mark; the API uses curly ones, the normaliser strips any of these pairs.
QUOTE_MARKS = {"“": "”", '"': '"', "«": "»", "„": "“"}
_ASCII = str.maketrans({"ø": "o", "Ø": "O"})  # letters NFKD does not decompose


def author_slug(name: str) -> str:
    """``"García Márquez"`` → ``"Garcia-Marquez"``, ``"J.K. Rowling"`` → ``"J-K-Rowling"``, as the real API."""
    ascii_name = unicodedata.normalize("NFKD", name.translate(_ASCII)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-")


@dataclass(frozen=True)
class Author:
    index: int
    name: str  # canonical: NFC, single spaces
    goodreads_id: int

    @property
    def slug(self) -> str:
        return author_slug(self.name)

    @property
    def goodreads_link(self) -> str | None:
        """What the API serves: a path on goodreads.com, or ``None``/``""`` for a few authors."""
        if self.index in _NO_LINK:
            return _NO_LINK[self.index]
        return f"/author/show/{self.goodreads_id}.{self.slug.replace('-', '_')}"

    @property
    def expected_link(self) -> str | None:
        return GOODREADS + self.goodreads_link if self.goodreads_link else None


@dataclass(frozen=True)
class Quote:
    """One quote: the clean values, and the dirty ones the API serves."""

    index: int
    author: Author
    text: str  # clean: what a correct normaliser recovers
    tags: tuple[str, ...]  # clean: lower case, unique, in order
    raw_text: str
    raw_author_name: str
    raw_tags: tuple[str, ...]

    @property
    def page(self) -> int:
        return self.index // QUOTES_PER_PAGE + 1

    def api_record(self) -> dict[str, Any]:
        return {"author": {"goodreads_link": self.author.goodreads_link, "name": self.raw_author_name,
                           "slug": self.author.slug},
                "tags": list(self.raw_tags), "text": self.raw_text}

    def parsed_item(self, base_url: str) -> dict[str, Any]:
        """The record a correct page parser builds (before normalisation), minus ``scraped_at``."""
        return {"url": page_url(base_url, self.page), "page": self.page, "text": self.raw_text,
                "author_name": self.raw_author_name, "author_slug": self.author.slug,
                "author_goodreads_link": self.author.expected_link, "tags": list(self.raw_tags)}

    def expected_item(self, base_url: str) -> dict[str, Any]:
        """The clean record a correct crawl writes, minus ``scraped_at`` and ``content_hash``."""
        return {**self.parsed_item(base_url), "text": self.text, "author_name": self.author.name,
                "tags": list(self.tags)}


def page_url(base_url: str, page: int) -> str:
    return f"{base_url.rstrip('/')}/{API_PATH}?page={page}"


class QuoteCatalog:
    """``n`` quotes from ``seed``, built lazily: the API's data and its own ground truth."""

    def __init__(self, n: int = 100, seed: int = 1) -> None:
        if n < 0:
            raise ValueError("the number of quotes cannot be negative")
        self.n = n
        self.seed = seed
        rng = random.Random(f"{seed}:authors")
        names = [f"{first} {last}" for first in _FIRST for last in _LAST]
        self.authors = tuple(Author(i, name, 1000 + rng.randrange(10**6))
                             for i, name in enumerate(rng.sample(names, _AUTHORS)))
        self.quote = lru_cache(maxsize=4096)(self._make_quote)

    @property
    def pages(self) -> int:
        return -(-self.n // QUOTES_PER_PAGE)

    def __iter__(self):
        return (self._make_quote(i) for i in range(self.n))

    def page(self, page: int, malformed: bool = False) -> dict[str, Any]:
        """The API's answer for ``?page=N`` (no quotes and ``has_next: false`` past the end)."""
        start = (page - 1) * QUOTES_PER_PAGE
        quotes = [self.quote(i).api_record() for i in range(start, min(start + QUOTES_PER_PAGE, self.n))]
        if malformed and quotes:
            del quotes[0]["text"]
        return {"has_next": page < self.pages, "page": page, "quotes": quotes, "tag": None,
                "top_ten_tags": self.top_ten_tags}

    @cached_property
    def top_ten_tags(self) -> list[list[Any]]:
        counts = Counter(tag for quote in self for tag in quote.tags)
        return [[tag, count] for tag, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]

    def _make_quote(self, index: int) -> Quote:
        rng = random.Random(f"{self.seed}:quote:{index}")
        author = self.authors[rng.randrange(len(self.authors))]
        text = _clean_text(rng, index)
        tags = tuple(rng.sample(TAGS, rng.choice((0, 1, 2, 2, 3, 3, 4))))
        return Quote(index, author, text, tags, raw_text=_dirty_text(rng, text, index),
                     raw_author_name=_dirty_name(rng, author.name), raw_tags=_dirty_tags(rng, tags))


def _clean_text(rng: random.Random, index: int) -> str:
    sentences = []
    for _ in range(rng.randint(1, 3)):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 14))]
        while words[0] in ("—", "🙂"):
            words[0] = rng.choice(_WORDS[:12])
        sentence = " ".join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + rng.choice(_ENDINGS))
    text = " ".join(sentences)
    if index % 19 == 4:  # ends with an apostrophe: only the enclosing pair of marks may go
        text += " The rest belongs to the dogs’"
    return text


def _dirty_text(rng: random.Random, text: str, index: int) -> str:
    if "fi" in text and rng.random() < 0.4:
        text = text.replace("fi", "\ufb01", 1)  # the "ﬁ" ligature: NFKC turns it back into "fi"
    if rng.random() < 0.4:
        spaces = [m.start() for m in re.finditer(" ", text)]
        if spaces:
            at = rng.choice(spaces)
            text = text[:at] + rng.choice(("\u00a0", "  ", "\n", " \t ")) + text[at + 1:]
    if rng.random() < 0.1:
        text = f" {text} "
    roll = index % 20
    if roll == 5:
        return text  # no quote marks at all
    opening = '"' if roll == 9 else "«" if roll == 13 else "„" if roll == 17 else "“"
    return opening + text + QUOTE_MARKS[opening]


def _dirty_name(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.25:
        return unicodedata.normalize("NFD", name)  # decomposed accents: NFKC composes them again
    if roll < 0.35:
        return name.replace(" ", "  ", 1) + " "
    return name


def _dirty_tags(rng: random.Random, tags: tuple[str, ...]) -> tuple[str, ...]:
    raw = [tag.upper() if rng.random() < 0.2 else tag.capitalize() if rng.random() < 0.2 else tag
           for tag in tags]
    if tags and rng.random() < 0.3:
        raw.append(rng.choice(tags).upper())  # a duplicate in another case
    if tags and rng.random() < 0.1:
        raw.insert(rng.randrange(len(raw) + 1), " ")  # a blank tag
    return tuple(raw)


class QuotesSite:
    """Maps ``api/quotes?page=N`` to the API's JSON (a :class:`~localsite.server.Site`)."""

    content_type = "application/json"
    charset: str | None = "utf-8"

    def __init__(self, catalog: QuoteCatalog) -> None:
        self.catalog = catalog

    def render(self, path: str, malformed: bool = False) -> tuple[int, str]:
        parts = urlsplit(path)
        if parts.path.strip("/") != API_PATH:
            return 404, json.dumps({"error": "not found"})
        raw = parse_qs(parts.query).get("page", ["1"])[-1]
        if not raw.isdigit() or int(raw) < 1:
            return 400, json.dumps({"error": "page must be a positive integer"})
        return 200, json.dumps(self.catalog.page(int(raw), malformed=malformed), ensure_ascii=False)


def build_parser() -> argparse.ArgumentParser:
    from .__main__ import add_server_args  # the books site's CLI: same knobs, imported only to serve

    parser = argparse.ArgumentParser(prog="python -m localsite.quotes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quotes", type=int, default=100, help="number of quotes (default 100)")
    add_server_args(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    from .__main__ import fault_config, run_site

    args = build_parser().parse_args(argv)
    catalog = QuoteCatalog(args.quotes, args.seed)
    run_site(QuotesSite(catalog), fault_config(args),
             f"Quotes API ({catalog.n} quotes, seed {catalog.seed})", args.host, args.port)


if __name__ == "__main__":
    main()
