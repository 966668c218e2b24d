"""Run the local site as a subprocess on a free port: for tests, the demo and benchmarks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from typing import Any

from .catalog import Catalog

_URL = re.compile(r"http://\S+")


class LocalSite:
    """``with LocalSite(books=1000, fault_rate=0.2) as site: site.url``. Knobs are CLI flags."""

    def __init__(self, books: int = 1000, seed: int = 1, startup_timeout: float = 30.0,
                 host: str = "127.0.0.1", **knobs: Any) -> None:
        self.books = books
        self.seed = seed
        self.knobs = {"host": host, **knobs}
        self.startup_timeout = startup_timeout
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.books, self.seed)

    def start(self) -> LocalSite:
        argv = [sys.executable, "-m", "scraper.localsite", "--books", str(self.books),
                "--seed", str(self.seed)]
        for name, value in self.knobs.items():
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            argv += [f"--{name.replace('_', '-')}", str(value)]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the site prints its URL once it listens
        match = _URL.search(line)
        if not match:
            self.stop()
            raise RuntimeError(f"local site did not start: {line!r}")
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

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self, paths: bool = False, timeline: bool = False) -> dict[str, Any]:
        query = "&".join(name for name, on in (("paths=1", paths), ("timeline=1", timeline)) if on)
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
