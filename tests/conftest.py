"""Shared fixtures: local sites as subprocesses on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scraper.localsite.process import LocalSite


@pytest.fixture(scope="session")
def books_site() -> Iterator[LocalSite]:
    """The 1000-book local site, no faults."""
    with LocalSite(books=1000, seed=1) as site:
        yield site
