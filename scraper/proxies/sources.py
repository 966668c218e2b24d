"""Where the proxy list comes from: a setting, a file (re-read when it changes) and an environment
variable, merged in that order. Every URL is checked; a bad one fails naming where it came from,
with its password masked."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from scraper.config import InvalidSetting, split_list
from scraper.secrets import mask_url

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")


def parse_lines(text: str) -> list[str]:
    """Proxy-file lines: one URL per line; blank lines and ``#`` comments (whole-line or trailing)
    are ignored."""
    urls = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            urls.append(line)
    return urls


def _masked(url: str) -> str:
    """:func:`mask_url`, also for a URL missing its ``scheme://`` (``user:pass@host:port``, a common
    slip): ``urlsplit`` reads ``user`` as the scheme there and leaves the password in the path."""
    if "//" not in url and "@" in url:
        masked = mask_url("//" + url)
        return masked[2:] if masked.startswith("//") else masked
    return mask_url(url)


def check_url(url: str, origin: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidSetting(origin, _masked(url), "a proxy URL like http://[user:pass@]host:port") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise InvalidSetting(origin, _masked(url),
                             f"a proxy URL with scheme {' or '.join(SCHEMES)} and a host")
    return url


@dataclass
class ProxySources:
    """Reads and merges the three sources. ``setting_name`` etc. only name the origins in errors."""

    listed: list[str] = field(default_factory=list)
    file: Path | None = None
    env_var: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    setting_name: str = "PROXY_LIST"
    file_setting: str = "PROXY_LIST_FILE"
    _file_stamp: tuple[float, int] | None = None
    _file_urls: list[str] = field(default_factory=list)

    def load(self) -> list[str]:
        """Everything, validated (raises :class:`InvalidSetting`; a missing file is an error)."""
        if self.file is not None:
            self._read_file(strict=True)
        return self._merged()

    def reload_if_changed(self) -> list[str] | None:
        """The merged list if the file changed since the last read, else ``None``. A file that became
        unreadable or invalid keeps the previous list (logged), so a half-written edit cannot empty
        the pool."""
        if self.file is None or self._stamp() == self._file_stamp:
            return None
        try:
            self._read_file(strict=False)
        except (OSError, InvalidSetting) as exc:
            logger.warning("Keeping the previous proxy list: cannot use %s: %s", self.file, exc)
            self._file_stamp = self._stamp()
            return None
        return self._merged()

    def _merged(self) -> list[str]:
        urls = [check_url(u, self.setting_name) for u in self.listed] + self._file_urls
        if self.env_var:
            urls += [check_url(u, f"${self.env_var}") for u in split_list(self.environ.get(self.env_var))]
        return list(dict.fromkeys(urls))

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.file.stat()  # type: ignore[union-attr]
        except OSError:
            return None
        return stat.st_mtime, stat.st_size

    def _read_file(self, *, strict: bool) -> None:
        assert self.file is not None
        stamp = self._stamp()
        try:
            text = self.file.read_text()
        except OSError as exc:
            if strict:
                raise InvalidSetting(self.file_setting, str(self.file), f"a readable file ({exc.strerror})") from None
            raise
        urls = [check_url(u, f"{self.file_setting} ({self.file}, line {n})")
                for n, u in self._numbered(text)]
        self._file_urls, self._file_stamp = urls, stamp

    @staticmethod
    def _numbered(text: str) -> list[tuple[int, str]]:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            for url in parse_lines(line):
                numbered.append((number, url))
        return numbered
