from __future__ import annotations

import time

from localsite.catalog import Catalog, slugify
from localsite.server import BooksSite


def test_deterministic_from_seed() -> None:
    a, b = Catalog(300, seed=5), Catalog(300, seed=5)
    assert [x.expected_item("http://h/") for x in a] == [y.expected_item("http://h/") for y in b]
    assert [x.upc for x in Catalog(300, seed=6)] != [x.upc for x in a]


def test_contains_the_edge_cases_a_parser_must_survive() -> None:
    books = list(Catalog(1000, seed=1))
    assert len({b.upc for b in books}) == 1000
    assert any(b.description is None for b in books)
    assert any(b.availability == 0 for b in books)
    assert any(b.tax > 0 for b in books) and any(b.tax == 0 for b in books)
    assert any(len(b.title.split()) > 4 for b in books)  # truncated in listings
    assert any(any(c in b.title for c in "&<\"'") for b in books)  # needs HTML escaping
    assert any(not b.title.isascii() for b in books)
    assert any(" (" in b.title and "#" in b.title for b in books)  # series, for normalisation
    assert {b.rating for b in books} == {1, 2, 3, 4, 5}
    assert all(b.price_incl_tax == b.price_excl_tax + b.tax for b in books)


def test_large_catalogue_is_lazy() -> None:
    started = time.process_time()
    catalog = Catalog(200_000, seed=2)
    site = BooksSite(catalog)
    status, body = site.render(f"catalogue/page-{catalog.pages}.html")
    assert status == 200 and "Page 10000 of 10000" in body
    last = catalog.book(catalog.n - 1)
    assert site.render(last.path)[0] == 200
    assert time.process_time() - started < 20  # generous: building 200k books eagerly would not fit


def test_routes_match_the_real_url_scheme() -> None:
    catalog = Catalog(45, seed=1)
    site = BooksSite(catalog)
    book = catalog.book(0)
    assert book.path == f"catalogue/{slugify(book.title)}_{catalog.n}/index.html"
    for path in ["", "index.html", "catalogue/page-1.html", "catalogue/page-3.html", book.path,
                 "catalogue/category/books_1/index.html", "catalogue/category/books_1/page-2.html",
                 book.category.path + "index.html"]:
        assert site.render(path)[0] == 200, path
    for path in ["catalogue/page-4.html", "catalogue/page-0.html", "nope.html",
                 book.path.replace(slugify(book.title), "wrong-slug"),
                 "catalogue/category/books/travel_999/index.html"]:
        assert site.render(path)[0] == 404, path


def test_slugify_like_django() -> None:
    assert slugify("A Light in the Attic") == "a-light-in-the-attic"
    assert slugify("Crème Brûlée: Recipes & Memories") == "creme-brulee-recipes-memories"
    assert slugify("東京") == "book"
