"""Run the local site (and local forward proxies) as subprocesses on free ports: for tests, the demo
and benchmarks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Self

from .catalog import Catalog
from .quotes import QuoteCatalog, page_url

_URL = re.compile(r"http://\S+")


class ServerProcess:
    """A server subprocess that prints its URL on its first line of output; stopped on exit."""

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        self._proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # printed once it listens
        match = _URL.search(line)
        if not match:
            self.stop()
            raise RuntimeError(f"{type(self).__name__} did not start: {line!r}")
        self.url = match[0]
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def knob_args(knobs: dict[str, Any]) -> list[str]:
    argv = []
    for name, value in knobs.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


class LocalProxy(ServerProcess):
    """``with LocalProxy(source="127.0.0.3", auth="user:pw") as proxy: proxy.url`` (no credentials
    in ``url``; :meth:`proxy_url` adds them)."""

    def __init__(self, source: str | None = None, auth: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.auth = auth

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "localsite.proxy",
                *knob_args({"source": self.source, "auth": self.auth})]

    def proxy_url(self) -> str:
        return self.url.replace("http://", f"http://{self.auth}@") if self.auth else self.url


class SiteProcess(ServerProcess):
    """A local site (books or quotes API) with ``/_stats``, ``/_control`` and ``/_reset``."""

    def stats(self, paths: bool = False, timeline: bool = False, agents: bool = False,
              arrivals: bool = False, firsts: bool = False) -> dict[str, Any]:
        query = "&".join(name for name, on in (("paths=1", paths), ("timeline=1", timeline),
                                               ("agents=1", agents), ("arrivals=1", arrivals),
                                               ("firsts=1", firsts)) if on)
        with urllib.request.urlopen(self.url + "_stats" + ("?" + query if query else "")) as resp:
            return json.load(resp)

    def control(self, **changes: Any) -> dict[str, Any]:
        return self._post("_control", changes)

    def reset(self) -> dict[str, Any]:
        return self._post("_reset", {})

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request) as resp:
            return json.load(resp)


class LocalSite(SiteProcess):
    """``with LocalSite(books=1000, fault_rate=0.2) as site: site.url``. Knobs are CLI flags."""

    def __init__(self, books: int = 1000, seed: int = 1, host: str = "127.0.0.1", **knobs: Any) -> None:
        super().__init__()
        self.books = books
        self.seed = seed
        self.knobs = {"host": host, **knobs}

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.books, self.seed)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "localsite", "--books", str(self.books),
                "--seed", str(self.seed), *knob_args(self.knobs)]


class LocalQuotesSite(SiteProcess):
    """``with LocalQuotesSite(quotes=95) as api: api.start_url`` (the quotes API's first page).
    Knobs are the same CLI flags as :class:`LocalSite`'s."""

    def __init__(self, quotes: int = 100, seed: int = 1, host: str = "127.0.0.1", **knobs: Any) -> None:
        super().__init__()
        self.quotes = quotes
        self.seed = seed
        self.knobs = {"host": host, **knobs}

    @property
    def catalog(self) -> QuoteCatalog:
        return QuoteCatalog(self.quotes, self.seed)

    @property
    def start_url(self) -> str:
        return page_url(self.url, 1)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "localsite.quotes", "--quotes", str(self.quotes),
                "--seed", str(self.seed), *knob_args(self.knobs)]


class StaticSite(SiteProcess):
    """``with StaticSite("tests/fixtures/shop") as site: site.url``: saved pages served from a directory
    (``python -m localsite.static``). Knobs are the same CLI flags as :class:`LocalSite`'s."""

    def __init__(self, directory: str | Path, origin: str = "", host: str = "127.0.0.1", **knobs: Any) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.knobs = {"origin": origin or None, "host": host, **knobs}

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "localsite.static", str(self.directory), *knob_args(self.knobs)]
