from __future__ import annotations

import pytest

from scraper.secrets import mask_url, redact


@pytest.mark.parametrize("url,expected", [
    ("http://user:pa%40ss@proxy:8080", "http://user:***@proxy:8080"),
    ("redis://:s3cret@localhost:6379/0", "redis://***@localhost:6379/0"),
    ("http://proxy:8080", "http://proxy:8080"),
    ("/local/path", "/local/path"),
])
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_redact_scrubs_passwords_from_foreign_messages() -> None:
    url = "s3://key:topsecret@bucket/x"
    message = f"Unrecognized URI {url}; also topsecret mentioned alone"
    assert "topsecret" not in redact(message, url)
