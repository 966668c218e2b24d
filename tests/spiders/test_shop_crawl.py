"""``scrapy crawl shop`` end to end against saved pages of the shop, served by a local static site."""

from __future__ import annotations

import json
from pathlib import Path

from localsite.process import StaticSite
from tests.helpers import TOLERATE_BAD_PAGES, run_crawl, stat

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shop"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def test_the_sitemap_leads_to_every_product_once_with_its_values(tmp_path: Path) -> None:
    with StaticSite(FIXTURES, origin="https://shop.example") as site:
        result = run_crawl("shop", tmp_path / "out", "-a", f"start_url={site.url}")
        assert "about.html" not in site.stats(paths=True)["paths"]  # the sitemap's other pages are skipped
    assert result.returncode == 0 and "Traceback" not in result.log, result.log[-3000:]
    rows = [{**row, "url": row["url"].removeprefix(site.url), "price": str(row.pop("price"))}
            for row in result.rows() if row.pop("scraped_at")]
    assert sorted(rows, key=str) == sorted(EXPECTED, key=str)

def test_malformed_pages_are_counted_and_the_crawl_goes_on(tmp_path: Path) -> None:
    with StaticSite(FIXTURES, origin="https://shop.example", malformed_rate=0.4) as site:
        result = run_crawl("shop", tmp_path / "out", "-a", f"start_url={site.url}", *TOLERATE_BAD_PAGES)
    assert result.returncode == 0, result.log[-3000:]
    malformed = stat(result, "pages/malformed")
    assert malformed > 0 and len(result.rows()) + malformed == len(EXPECTED)
