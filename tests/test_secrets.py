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


def test_secret_settings_are_masked_in_scrapys_overridden_settings_line() -> None:
    import logging

    from scrapy.settings import Settings

    from scraper.secrets import SecretSettingsFilter

    settings = Settings({"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "t0k3n", "BOT_NAME": "bot"})
    record = logging.LogRecord("scrapy.crawler", logging.INFO, "", 0, "Overridden settings:\n%(settings)s",
                               ({"settings": "{'AWS_SECRET_ACCESS_KEY': 's3cr3t', 'AWS_SESSION_TOKEN': "
                                             "'t0k3n', 'BOT_NAME': 'bot'}"},), None)
    assert SecretSettingsFilter(settings).filter(record)
    assert "s3cr3t" not in record.getMessage() and "t0k3n" not in record.getMessage()
    assert "'BOT_NAME': 'bot'" in record.getMessage()
