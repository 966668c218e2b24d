"""``scrapy parse URL --spider books``: a local copy's page is fetched and parsed (it was dropped as
offsite: without ``-a start_url`` the spider's allowed_domains name the real site)."""

from __future__ import annotations

import os
import subprocess
import sys

from localsite.process import LocalSite
from tests.helpers import ROOT


def test_parse_fetches_a_local_page_with_the_spiders_callback() -> None:
    with LocalSite(books=5, seed=3) as site:
        book = next(iter(site.catalog))
        proc = subprocess.run([sys.executable, "-m", "scrapy", "parse", site.url + book.path, "--spider", "books",
                               "-c", "parse_book", "-s", "PARQUET_URI="],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                              text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert f"'upc': '{book.upc}'" in log and "No response downloaded" not in log
    assert " ERROR: " not in log and "Traceback" not in log
