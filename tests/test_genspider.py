"""``scrapy genspider -t project`` writes a spider in the project's style, which imports, loads and
crawls. Runs in a temporary copy of the project: nothing is generated in the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from localsite.process import LocalQuotesSite
from scraper.commands.genspider import start_url as genspider_start_url
from tests.helpers import ROOT

# Step 1 of docs/add-a-spider.md, for this test: a page module with the parse_page the template calls.
PAGE_MODULE = '"""Test page module: the quotes API\'s parser under a new name."""\n' \
              "from scraper.pages.quotes import parse_page  # noqa: F401\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "scraper", copy / "scraper", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "scrapy.cfg", copy / "scrapy.cfg")
    (copy / "scraper" / "pages" / "example.py").write_text(PAGE_MODULE)
    return copy


def run(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    env.pop("SCRAPY_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def generated(project: Path) -> Path:
    proc = run(project, "-m", "scrapy", "genspider", "-t", "project", "example", "example.com")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Created spider 'example' using template 'project'" in proc.stdout
    return project / "scraper" / "spiders" / "example.py"


def test_template_is_listed(project: Path) -> None:
    proc = run(project, "-m", "scrapy", "genspider", "--list")
    assert proc.returncode == 0 and "project" in proc.stdout.split()


def test_generated_module_imports_with_the_expected_class(project: Path, generated: Path) -> None:
    assert generated.exists() and not (ROOT / "scraper" / "spiders" / "example.py").exists()
    source = generated.read_text()
    assert 'page_parser("scraper.pages.example", self.name)' in source
    assert "async def start(self)" in source and "**kwargs" in source and "$" not in source
    check = ("import scraper.spiders.example as m; s = m.ExampleSpider(); "
             "print(m.ExampleSpider.__name__, s.name, s.start_url, s.allowed_domains); "
             "t = m.ExampleSpider(start_url='http://127.0.0.1:9/x', _job='j1'); "
             "print(t.allowed_domains, t._job)")
    proc = run(project, "-W", "error", "-c", check)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["ExampleSpider example https://example.com/ ['example.com']",
                                        "['127.0.0.1'] j1"]
    listing = run(project, "-m", "scrapy", "list")
    assert listing.returncode == 0 and "example" in listing.stdout.split()


def test_generated_spider_crawls_through_the_project_machinery(project: Path, generated: Path,
                                                               tmp_path: Path) -> None:
    with LocalQuotesSite(quotes=25, seed=2) as api:
        proc = run(project, "-m", "scrapy", "crawl", "example", "-a", f"start_url={api.start_url}",
                   "-s", f"PARQUET_URI={tmp_path / 'out'}")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    for marker in ("Traceback", "DeprecationWarning", "ERROR"):
        assert marker not in log, marker
    assert ds.dataset(tmp_path / "out", format="parquet").count_rows() == 25
    assert "'normalize/items': 25" in log  # the item's normaliser ran, declared, not wired


def test_a_bad_start_url_fails_naming_it(project: Path, generated: Path) -> None:
    proc = run(project, "-m", "scrapy", "crawl", "example", "-a", "start_url=example.com/x")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Invalid spider argument start_url='example.com/x'" in log
    assert "Traceback" not in log


def test_plain_genspider_uses_the_project_template_and_a_missing_one_fails(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "scraper", copy / "scraper", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "scrapy.cfg", copy / "scrapy.cfg")
    (copy / "scraper" / "pages" / "bar.py").write_text(PAGE_MODULE)  # step 1 of the guide
    missing = run(copy, "-m", "scrapy", "genspider", "-t", "nope", "baz", "baz.com")
    assert missing.returncode == 1 and "Unable to find template: nope" in missing.stdout + missing.stderr
    plain = run(copy, "-m", "scrapy", "genspider", "bar", "bar.com")
    assert plain.returncode == 0 and "Created spider 'bar' using template 'project'" in plain.stdout
    again = run(copy, "-m", "scrapy", "genspider", "bar", "bar.com")
    assert again.returncode == 1 and "already exists" in again.stdout  # nothing written


@pytest.mark.parametrize("argument,start", [
    ("127.0.0.1:8765", "http://127.0.0.1:8765/"),
    ("localhost:8000/catalogue/", "http://localhost:8000/catalogue/"),
    ("shop.example", "https://shop.example/"),
    ("http://shop.example/en/", "http://shop.example/en/"),
])
def test_the_second_argument_becomes_the_start_url(argument: str, start: str) -> None:
    assert genspider_start_url(argument) == start


def test_a_spider_generated_before_its_page_module_breaks_only_itself(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "scraper", copy / "scraper", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "scrapy.cfg", copy / "scrapy.cfg")
    made = run(copy, "-m", "scrapy", "genspider", "early", "127.0.0.1:8765")
    assert made.returncode == 0 and "Its start URL: http://127.0.0.1:8765/" in made.stdout
    assert "scraper/pages/early.py" in made.stdout  # what to write next
    listing = run(copy, "-m", "scrapy", "list")
    assert listing.returncode == 0 and "early" in listing.stdout.split()  # the project still loads
    crawl = run(copy, "-m", "scrapy", "crawl", "early", "-s", f"PARQUET_URI={tmp_path / 'out'}")
    log = crawl.stdout + crawl.stderr
    assert crawl.returncode == 1 and "Traceback" not in log
    assert "Spider 'early' needs its page module scraper.pages.early" in log
