"""The shipped package is the crawler only: a crawl runs with requirements.txt alone, without pytest or the
optional report's matplotlib; it never imports aiohttp itself (Scrapy 2.19 requires it, for its remote
control: only the local sites use it here); and the egg holds no local site."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localsite.process import LocalSite
from tests.helpers import ROOT

DEV_ONLY = ("aiohttp", "pytest", "matplotlib")  # not pinned in requirements.txt
NOT_INSTALLED = ("pytest", "matplotlib")  # aiohttp comes with Scrapy itself
# Run scrapy with those unimportable, as on a Scrapyd host that installed requirements.txt only.
WITHOUT = ("import sys; sys.modules.update(dict.fromkeys({names!r})); "
           "from scrapy.cmdline import execute; sys.argv = ['scrapy', *sys.argv[1:]]; execute()")


def scrapy_without_dev_packages(*args: str) -> subprocess.CompletedProcess[str]:
    code = WITHOUT.format(names=NOT_INSTALLED)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_runtime_requirements_name_none_of_the_development_packages() -> None:
    pinned = [line.split("==")[0].strip().lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert not set(pinned) & set(DEV_ONLY), pinned


def test_a_crawl_runs_without_the_development_packages(tmp_path: Path) -> None:
    with LocalSite(books=40, seed=3) as site:
        result = scrapy_without_dev_packages("crawl", "books", "-a", f"start_url={site.url}",
                                             "-s", f"PARQUET_URI={tmp_path / 'out'}")
    log = result.stdout + result.stderr
    assert result.returncode == 0 and "Exit status 0" in log, log[-3000:]


def test_the_package_ships_no_local_site_and_never_imports_aiohttp() -> None:
    assert not (ROOT / "scraper" / "localsite").exists() and not (ROOT / "scraper" / "demo.py").exists()
    for module in (ROOT / "scraper").rglob("*.py"):
        text = module.read_text()
        assert "import aiohttp" not in text and "from aiohttp" not in text and "localsite" not in text, module


def test_the_report_without_matplotlib_fails_the_start_naming_its_setting(tmp_path: Path) -> None:
    result = scrapy_without_dev_packages("crawl", "books", "-a", "start_url=http://127.0.0.1:1/",
                                         "-s", "RUN_REPORT_ENABLED=True", "-s", f"PARQUET_URI={tmp_path / 'out'}")
    log = result.stdout + result.stderr
    assert result.returncode == 1 and "Invalid setting RUN_REPORT_ENABLED=True" in log, log[-3000:]
