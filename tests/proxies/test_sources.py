from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from scraper.config import InvalidSetting, split_list
from scraper.proxies.sources import ProxySources, check_url, parse_lines

A = "http://a.example:8000"
B = "http://b.example:8000"
C = "https://user:pw@c.example:8443"
D = "http://d.example:8000"
LEAKY = "http://user:secretpw@host:99999"


class FileWriter:
    """Writes the proxy file with a fresh mtime each time, so a change is seen even when the
    filesystem's timestamps are coarse and the size stays the same."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime = 1_700_000_000

    def __call__(self, text: str) -> Path:
        self.path.write_text(text)
        self.mtime += 10
        os.utime(self.path, (self.mtime, self.mtime))
        return self.path


@pytest.fixture
def write(tmp_path: Path) -> FileWriter:
    return FileWriter(tmp_path / "proxies.txt")


@pytest.mark.parametrize("value,expected", [
    (None, []),
    ("", []),
    ([], []),
    ([A, f" {B} ", "", "  "], [A, B]),
    ((A, B), [A, B]),
    (f"{A},{B}", [A, B]),
    (f"{A}, {B} ,, {C}", [A, B, C]),
    (f"{A} {B}\t{C}", [A, B, C]),
    (f"{A}\n{B}\r\n\n{C}\n", [A, B, C]),
])
def test_split_list(value: object, expected: list[str]) -> None:
    assert split_list(value) == expected  # type: ignore[arg-type]


def test_parse_lines_ignores_blank_lines_and_comments() -> None:
    text = f"""# proxies for the books crawl
{A}

   # indented comment
{B}   # trailing comment
   {C}
#{D}
"""
    assert parse_lines(text) == [A, B, C]


def test_load_merges_setting_file_and_env_in_order_without_duplicates(write: FileWriter) -> None:
    path = write(f"# from the file\n{B}\n{C}  # eu\n{B}\n")
    sources = ProxySources(listed=[A, B], file=path, env_var="PROXIES",
                           environ={"PROXIES": f"{C}, {D}"})
    assert sources.load() == [A, B, C, D]


def test_load_with_only_a_setting() -> None:
    assert ProxySources(listed=[B, A, B]).load() == [B, A]


def test_unset_env_var_adds_nothing() -> None:
    sources = ProxySources(listed=[A], env_var="PROXIES", environ={"OTHER": B})
    assert sources.load() == [A]


def test_check_url_returns_a_valid_url_unchanged() -> None:
    assert check_url(C, "PROXY_LIST") == C


@pytest.mark.parametrize("bad", [
    "proxy.example:8080",  # no scheme
    "1.2.3.4:8080",
    "ftp://proxy.example:21",
    "socks5://proxy.example:1080",
    "http://proxy.example:99999",  # port out of range
    "http://proxy.example:port",
    "http://",  # no host
])
def test_invalid_url_names_the_setting(bad: str) -> None:
    with pytest.raises(InvalidSetting) as exc_info:
        ProxySources(listed=[A, bad]).load()
    assert exc_info.value.setting == "PROXY_LIST"
    assert "PROXY_LIST" in str(exc_info.value)


@pytest.mark.parametrize("leaky", [
    LEAKY,  # bad port
    "ftp://user:secretpw@proxy.example:21",  # bad scheme
    "user:secretpw@proxy.example:8080",  # no scheme: the password must be masked all the same
])
def test_invalid_url_error_does_not_contain_the_password(leaky: str) -> None:
    with pytest.raises(InvalidSetting) as exc_info:
        ProxySources(listed=[leaky], setting_name="ROTATING_PROXY_LIST").load()
    message = str(exc_info.value)
    assert "ROTATING_PROXY_LIST" in message
    assert "user" in message  # still recognisable
    assert "secretpw" not in message


def test_invalid_url_in_the_file_names_the_file_and_line(write: FileWriter) -> None:
    path = write(f"# header\n{A}\n\n{LEAKY}  # new one\n")
    with pytest.raises(InvalidSetting) as exc_info:
        ProxySources(file=path).load()
    message = str(exc_info.value)
    assert f"PROXY_LIST_FILE ({path}, line 4)" in message
    assert "secretpw" not in message


def test_invalid_url_in_the_env_var_names_the_variable() -> None:
    sources = ProxySources(listed=[A], env_var="SCRAPER_PROXIES",
                           environ={"SCRAPER_PROXIES": f"{B},{LEAKY}"})
    with pytest.raises(InvalidSetting) as exc_info:
        sources.load()
    message = str(exc_info.value)
    assert "$SCRAPER_PROXIES" in message
    assert "secretpw" not in message


def test_missing_file_names_the_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(InvalidSetting) as exc_info:
        ProxySources(listed=[A], file=path).load()
    assert exc_info.value.setting == "PROXY_LIST_FILE"
    assert "PROXY_LIST_FILE" in str(exc_info.value)
    assert "nope.txt" in str(exc_info.value)


def test_reload_without_a_file_is_never_a_change() -> None:
    sources = ProxySources(listed=[A])
    sources.load()
    assert sources.reload_if_changed() is None


def test_reload_returns_the_new_list_only_when_the_file_changes(write: FileWriter) -> None:
    path = write(f"{B}\n")
    sources = ProxySources(listed=[A], file=path)
    assert sources.load() == [A, B]
    assert sources.reload_if_changed() is None

    write(f"{B}\n{C}\n")
    assert sources.reload_if_changed() == [A, B, C]
    assert sources.reload_if_changed() is None

    write(f"{D}\n{C}\n")  # same size as before: the new mtime tells
    assert sources.reload_if_changed() == [A, D, C]


def test_reload_of_an_invalid_file_keeps_the_previous_list(
        write: FileWriter, caplog: pytest.LogCaptureFixture) -> None:
    path = write(f"{B}\n")
    sources = ProxySources(listed=[A], file=path)
    sources.load()

    write(f"{B}\n{LEAKY}\n")
    with caplog.at_level(logging.WARNING, logger="scraper.proxies.sources"):
        assert sources.reload_if_changed() is None
    assert "Keeping the previous proxy list" in caplog.text
    assert "secretpw" not in caplog.text
    assert sources.reload_if_changed() is None  # the same bad file is not re-read

    write(f"{C}\n")  # fixed
    assert sources.reload_if_changed() == [A, C]


def test_reload_of_a_deleted_file_keeps_the_previous_list(write: FileWriter) -> None:
    path = write(f"{B}\n{C}\n")
    sources = ProxySources(listed=[A], file=path)
    assert sources.load() == [A, B, C]

    path.unlink()
    assert sources.reload_if_changed() is None
    assert sources.reload_if_changed() is None

    write(f"{D}\n")  # back again
    assert sources.reload_if_changed() == [A, D]
