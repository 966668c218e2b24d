"""End to end through real forward proxies on loopback: proxy.py (from PyPI, with Basic auth) and our
test proxy, one refusing connections, one whose exit address the local site bans with a captcha page.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from localsite.process import LocalProxy, LocalSite
from tests.helpers import run_crawl, start_crawl, stat, wait_for

PASSWORD = "pr0xy-s3cret-pw"
BANNED_EXIT = "127.0.0.3"  # all of 127/8 is loopback: the banned proxy connects out from here


@pytest.fixture
def proxy_py(tmp_path: Path) -> Iterator[str]:
    """proxy.py requiring Basic auth; its URL with credentials."""
    port_file = tmp_path / "proxy.port"
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
                             "--port-file", str(port_file), "--basic-auth", f"alice:{PASSWORD}",
                             "--num-workers", "1", "--num-acceptors", "1", "--log-level", "ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), timeout=30)
        yield f"http://alice:{PASSWORD}@127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def refused_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: connections are refused


def test_crawl_through_rotating_proxies(proxy_py: str, tmp_path: Path) -> None:
    with LocalSite(books=1000, seed=3, ban_clients=BANNED_EXIT, ban_page="captcha") as site, \
            LocalProxy(source="127.0.0.2", auth=f"carol:{PASSWORD}") as good, \
            LocalProxy(source=BANNED_EXIT, auth=f"bob:{PASSWORD}") as banned:
        dead = refused_port()
        proxies = [proxy_py, good.proxy_url(), banned.proxy_url(), dead]
        result = run_crawl("books", tmp_path / "out", "-a", f"start_url={site.url}",
                           "-s", f"PROXY_LIST={','.join(proxies)}", "-s", "PROXY_BAN_MARKERS=captcha",
                           "-s", "PROXY_COOLDOWN_BASE=60")
        stats = site.stats(agents=True)
    log = result.log
    assert result.returncode == 0, log[-3000:]
    rows = result.rows()
    assert len(rows) == 1000 and len({r["upc"] for r in rows}) == 1000
    # No secret anywhere; no Scrapy UA ever reached the site; a clean log.
    assert PASSWORD not in log
    assert not [agent for agent in stats["user_agents"] if "Scrapy" in agent or not agent]
    assert "Traceback" not in log and "Deprecat" not in log
    # The bad proxies were found out and cool down; the good ones carried the traffic.
    assert stat(result, "proxy/bans/marker_captcha") >= 1
    assert stat(result, "proxy/bans/DownloadConnectionRefusedError") >= 1
    assert stat(result, "proxy/cooling") == 2 and stat(result, "proxy/good") == 2
    assert stat(result, "proxy/direct") == 0
    clients = stats["clients"]
    assert clients.get(BANNED_EXIT, 0) <= 10  # a few before each cool-down, then nothing
    assert clients.get("127.0.0.2", 0) > 100 and clients.get("127.0.0.1", 0) > 100  # ours; proxy.py
    assert "Proxy pool: 2 good, 0 on probation, 2 cooling" in log
    assert "http://alice:***@127.0.0.1" in log


def test_all_proxies_cooling_requests_wait_then_go(tmp_path: Path) -> None:
    """Every proxy banned at first: requests wait (logged) for the cool-down, never stall or fail."""
    with LocalSite(books=20, seed=4) as site, LocalProxy(source=BANNED_EXIT) as proxy:
        site.control(ban_clients=[BANNED_EXIT])
        log_path = tmp_path / "crawl.log"
        proc = start_crawl("books", tmp_path / "out", log_path, "-a", f"start_url={site.url}",
                           "-s", f"PROXY_LIST={proxy.url}", "-s", "PROXY_COOLDOWN_BASE=2",
                           "-s", "PROXY_COOLDOWN_MIN=2", "-s", "PROXY_BAN_RETRY_TIMES=20",
                           "-s", "ROBOTSTXT_OBEY=False")  # robots.txt would wait in place, not in the scheduler
        try:
            wait_for(lambda: "All 1 proxies are cooling down" in log_path.read_text(), timeout=60)
            site.control(ban_clients=[])  # the site lifts the ban
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    out = tmp_path / "out"
    assert ds.dataset(out).count_rows() == 20, log_path.read_text()[-3000:]
    assert stat(out, "proxy/waited") >= 1 and stat(out, "proxy/bans/status_403") >= 1
    assert stat(out, "proxy/reanimated") >= 1 and stat(out, "proxy/direct") == 0
