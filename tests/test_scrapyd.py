"""Scrapyd end to end: a real ``scrapyd`` (from PyPI) on a free loopback port with temporary
directories, the project deployed with ``scrapyd-deploy`` from a temporary copy, ``books`` scheduled
with spider arguments and settings through ``schedule.json``, and a job cancelled mid-crawl."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import scrapyd as scrapyd_installed  # noqa: F401 - the server the tests start

from localsite.process import LocalSite
from tests.helpers import ROOT, wait_for

# scrapyd and scrapyd-client come from requirements-test.txt (make install-test): a missing one fails
# the tests, it never skips them.
SCRAPYD_DEPLOY = Path(sys.executable).with_name("scrapyd-deploy")
assert SCRAPYD_DEPLOY.exists(), "scrapyd-client is missing: run make install-test"

PROJECT = "scraper"
# Never the developer's own settings: a test Scrapyd reads only its own scrapyd.conf.
CLEAN_ENV = ("PYTHONPATH", "SCRAPY_SETTINGS_MODULE", "SCRAPY_PROJECT", "SCRAPYD_BIND_ADDRESS",
             "SCRAPYD_HTTP_PORT", "SCRAPYD_UNIX_SOCKET_PATH")


class Scrapyd:
    """A ``scrapyd`` subprocess in ``root`` (config, eggs, logs, dbs all inside it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Scrapyd:
        for _ in range(3):  # a free port can be taken between choosing and binding it: try another
            self.port = free_port()
            (self.root / "scrapyd.conf").write_text(SCRAPYD_CONF.format(root=self.root, port=self.port))
            env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
            env.update(HOME=str(self.root), SCRAPYD_HTTP_PORT=str(self.port))  # no ~/.scrapyd.conf
            with open(self.root / "scrapyd.log", "ab") as log:
                self.proc = subprocess.Popen([sys.executable, "-m", "scrapyd"], cwd=self.root, env=env,
                                             stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(self._ready, timeout=30)
                return self
            except TimeoutError:
                self.stop()
        raise RuntimeError("scrapyd did not start:\n" + (self.root / "scrapyd.log").read_text()[-3000:])

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise TimeoutError("scrapyd exited")
        try:
            return self.get("daemonstatus.json")["status"] == "ok"
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._cancel_all()  # a failed test must not leave crawls running after their Scrapyd
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _cancel_all(self) -> None:
        try:
            jobs = self.get("listjobs.json", project=PROJECT)
        except (OSError, ValueError):
            return  # nothing deployed, or the server is gone
        live = [j["id"] for j in jobs.get("pending", []) + jobs.get("running", [])]
        for job in live:
            self.post("cancel.json", [("project", PROJECT), ("job", job)])
        try:
            self.wait_finished(*live, timeout=30)
        except TimeoutError:
            for job in live:  # a second SIGINT forces the stop
                self.post("cancel.json", [("project", PROJECT), ("job", job)])

    def get(self, endpoint: str, **params: str) -> dict[str, Any]:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(self.url + endpoint + query, timeout=30) as resp:
            return json.load(resp)

    def post(self, endpoint: str, fields: list[tuple[str, str]]) -> dict[str, Any]:
        data = urllib.parse.urlencode(fields).encode()
        with urllib.request.urlopen(self.url + endpoint, data=data, timeout=30) as resp:
            answer = json.load(resp)
        assert answer.get("status") == "ok", answer
        return answer

    def schedule(self, spider: str, args: dict[str, str], settings: dict[str, str]) -> str:
        fields = [("project", PROJECT), ("spider", spider), *args.items(),
                  *(("setting", f"{name}={value}") for name, value in settings.items())]
        return self.post("schedule.json", fields)["jobid"]

    def state(self, job: str) -> str | None:
        jobs = self.get("listjobs.json", project=PROJECT)
        return next((state for state in ("pending", "running", "finished")
                     if any(j["id"] == job for j in jobs[state])), None)

    def wait_finished(self, *jobs: str, timeout: float = 90) -> None:
        wait_for(lambda: all(self.state(job) == "finished" for job in jobs), timeout=timeout, interval=0.3)

    def job_log(self, spider: str, job: str) -> str:
        return (self.root / "logs" / PROJECT / spider / f"{job}.log").read_text()


SCRAPYD_CONF = """\
[scrapyd]
bind_address = 127.0.0.1
http_port = {port}
eggs_dir = {root}/eggs
logs_dir = {root}/logs
items_dir =
jobs_dir =
dbs_dir = {root}/dbs
jobs_to_keep = 5
finished_to_keep = 100
max_proc = 2
poll_interval = 0.2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrapyd]:
    server = Scrapyd(tmp_path_factory.mktemp("scrapyd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as committed (package, tests, setup.py, scrapy.cfg), so building eggs never
    writes ``build/`` or ``*.egg-info`` into the repository."""
    copy = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("scraper", "tests"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in ("setup.py", "scrapy.cfg", "requirements.txt"):
        shutil.copy(ROOT / name, copy / name)
    return copy


def point_at(project: Path, server: Scrapyd) -> None:
    """The project's own ``[deploy:local]`` target, re-pointed at the test Scrapyd's port."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "scrapy.cfg")
    assert cfg["deploy:local"]["url"] == "http://127.0.0.1:6800/" and cfg["deploy:local"]["project"] == PROJECT
    cfg["deploy:local"]["url"] = server.url
    with open(project / "scrapy.cfg", "w") as handle:
        cfg.write(handle)


def deploy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}


@pytest.fixture(scope="module")
def deployed(scrapyd: Scrapyd, project_copy: Path) -> dict[str, Any]:
    point_at(project_copy, scrapyd)
    proc = subprocess.run([str(SCRAPYD_DEPLOY), "local", "-v", "r1"], cwd=project_copy, env=deploy_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["status"] == "ok" and answer["project"] == PROJECT and answer["version"] == "r1", answer
    return answer


def test_egg_holds_the_package_and_its_settings_not_the_tests(project_copy: Path, tmp_path: Path) -> None:
    egg = tmp_path / "scraper.egg"
    proc = subprocess.run([str(SCRAPYD_DEPLOY), "--build-egg", str(egg)], cwd=project_copy, env=deploy_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(egg) as archive:
        names = archive.namelist()
        entry_points = archive.read("EGG-INFO/entry_points.txt").decode()
    for module in ("scraper/settings.py", "scraper/spiders/books.py", "scraper/spiders/quotes.py",
                   "scraper/pages/quotes.py", "scraper/normalize/quotes.py", "scraper/extensions/rawarchive.py"):
        assert module in names, module
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    assert "settings = scraper.settings" in entry_points


def test_deployed_egg_lists_the_spiders(scrapyd: Scrapyd, deployed: dict[str, Any]) -> None:
    spiders = scrapyd.get("listspiders.json", project=PROJECT)["spiders"]  # runs the egg on the host
    assert {"books", "quotes"} <= set(spiders)
    assert scrapyd.get("listversions.json", project=PROJECT)["versions"] == ["r1"]


def test_concurrent_jobs_with_arguments_and_settings_write_their_own_datasets(
        scrapyd: Scrapyd, deployed: dict[str, Any], books_site: LocalSite, tmp_path: Path) -> None:
    template = f"{tmp_path}/%(_job)s/"  # the job id keeps concurrent jobs apart
    jobs = [scrapyd.schedule("books", {"start_url": f"{books_site.url}index.html"},
                             {"PARQUET_URI": template, "NORMALIZE_WORKERS": "1"})
            for _ in range(2)]
    assert len(set(jobs)) == 2
    scrapyd.wait_finished(*jobs)
    for job in jobs:
        log = scrapyd.job_log("books", job)
        for marker in ("Traceback", "DeprecationWarning", "ERROR"):
            assert marker not in log, (marker, log[-3000:])
        # The settings came from the egg Scrapyd stored, not from this checkout.
        assert str(scrapyd.root / "eggs" / PROJECT) in log
        assert "'finish_reason': 'finished'" in log and "Parquet: 1000 book rows" in log
        out = tmp_path / job
        assert ds.dataset(out, format="parquet").count_rows() == 1000
        assert (out / "_SUCCESS").exists()
        assert json.loads((out / "_manifest.json").read_text())["complete"] is True


@pytest.fixture(scope="module")
def slow_site() -> Iterator[LocalSite]:
    with LocalSite(books=1000, seed=4, latency_ms=150) as site:
        yield site


def test_cancelled_job_leaves_only_complete_parts(scrapyd: Scrapyd, deployed: dict[str, Any],
                                                  slow_site: LocalSite, tmp_path: Path) -> None:
    job = scrapyd.schedule("books", {"start_url": slow_site.url},
                           {"PARQUET_URI": f"{tmp_path}/%(_job)s/", "PARQUET_ROW_GROUP_SIZE": "20",
                            "PARQUET_PART_MAX_ROWS": "40", "CONCURRENT_REQUESTS": "4",
                            "NORMALIZE_BATCH_SIZE": "10"})
    out = tmp_path / job
    wait_for(lambda: scrapyd.state(job) == "running" and bool(list(out.glob("part-*.parquet"))),
             timeout=60, interval=0.2)
    assert scrapyd.post("cancel.json", [("project", PROJECT), ("job", job)])["prevstate"] == "running"
    started = time.monotonic()
    scrapyd.wait_finished(job, timeout=60)
    log = scrapyd.job_log("books", job)
    assert "Received SIGINT" in log and "'finish_reason': 'shutdown'" in log, log[-3000:]
    assert "Traceback" not in log
    assert "Exit status 3: closed before the end (reason: shutdown)" in log.strip().splitlines()[-1]
    visible = sorted(out.glob("part-*.parquet"))
    assert visible and not list(out.glob(".*inprogress"))
    rows = sum(pq.read_table(part).num_rows for part in visible)  # every visible part is whole
    assert 0 < rows < 1000
    assert ds.dataset(out, format="parquet").count_rows() == rows
    assert not (out / "_SUCCESS").exists()  # readers can tell it is partial
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] is False and manifest["rows"] == rows
    assert time.monotonic() - started < 30


def test_a_job_that_could_not_start_says_so_in_its_last_log_line(scrapyd: Scrapyd, deployed: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    job = scrapyd.schedule("books", {"start_url": "http://127.0.0.1:1/"},
                           {"PARQUET_URI": f"{tmp_path}/out", "CONCURRENT_REQUESTS": "0"})
    scrapyd.wait_finished(job, timeout=60)
    log = scrapyd.job_log("books", job)
    assert "ERROR: Invalid setting CONCURRENT_REQUESTS='0'" in log, log[-3000:]
    assert "Exit status 1: the crawl could not start" in log.strip().splitlines()[-1]
    assert "Traceback" not in log and "never retrieved" not in log


def test_two_jobs_sharing_a_redis_url_cooperate(scrapyd: Scrapyd, deployed: dict[str, Any],
                                                redis_server: str, tmp_path: Path) -> None:
    """Two Scrapyd jobs with one REDIS_URL are two workers of one crawl: the catalogue is split,
    nothing is fetched or written twice."""
    with LocalSite(books=300, seed=9, latency_ms=20) as site:
        settings = {"PARQUET_URI": f"{tmp_path}/shared/", "REDIS_URL": redis_server,
                    "REDIS_CHECKPOINT_INTERVAL": "1", "NORMALIZE_WORKERS": "1"}
        jobs = [scrapyd.schedule("books", {"start_url": site.url}, settings) for _ in range(2)]
        scrapyd.wait_finished(*jobs, timeout=180)
        pages = site.stats()["requests"]
    logs = [scrapyd.job_log("books", job) for job in jobs]
    for log in logs:
        assert "Traceback" not in log and "'finish_reason': 'finished'" in log, log[-3000:]
        assert "Redis frontier scraper:books" in log
    rows = ds.dataset(tmp_path / "shared", format="parquet").to_table(columns=["upc"]).column("upc").to_pylist()
    assert len(rows) == 300 and len(set(rows)) == 300
    assert pages <= 300 + 15 + 2  # books + listing pages + a robots.txt each: nothing twice
