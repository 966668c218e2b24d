"""Shared fixtures: local sites as subprocesses on free ports."""

from __future__ import annotations

import faulthandler
from collections.abc import Iterator

import pytest

from localsite.process import LocalSite
from tests.helpers import RedisServer


@pytest.fixture(scope="session")
def books_site() -> Iterator[LocalSite]:
    """The 1000-book local site, no faults."""
    with LocalSite(books=1000, seed=1) as site:
        yield site


EXIT_WATCHDOG = 120  # seconds


def pytest_unconfigure(config: pytest.Config) -> None:
    """A hang at interpreter exit (a leaked non-daemon thread, an unjoinable child) fails fast and
    shows every thread's stack, instead of holding CI until its time limit."""
    faulthandler.dump_traceback_later(EXIT_WATCHDOG, exit=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (never the machine's own Redis)."""
    with RedisServer() as url:
        yield url
