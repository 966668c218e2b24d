"""The local books site over HTTP: aiohttp's low-level server, routing by hand, faults on top.

``/_stats`` (GET) reports request counts, per client address too, and how many TCP connections
clients opened (``?paths=1`` adds per-path counts,
``?agents=1`` User-Agent counts, ``?timeline=1`` status counts per second, ``?firsts=1`` the span
over which paths were first requested; ``latency_p50_ms`` of 200s) and ``/_control`` (POST,
JSON object of :class:`FaultConfig` fields) changes knobs at run time, e.g. halving capacity mid-run.
Clients listed in ``ban_clients`` get a 403 or a captcha page, like a site that banned a proxy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from dataclasses import asdict
from typing import Protocol

from aiohttp import web

from .catalog import Catalog
from .faults import FaultConfig, FaultPlan, TokenBucket, retry_after_value
from .render import listing_page, product_page

logger = logging.getLogger(__name__)

_PAGE = re.compile(r"(?:index|page-(\d+))\.html")
_PRODUCT = re.compile(r"catalogue/([^/]+)_(\d+)/index\.html")
_CATEGORY = re.compile(r"catalogue/category/books/([^/]+)_(\d+)/(index\.html|page-\d+\.html)")
_PRICE = re.compile(r"£\d+\.\d\d")
_ROBOTS = "User-agent: *\nDisallow: {}\n"
_HTML = "text/html"  # like the real site: no charset in the header, the page's <meta> declares it


class Site(Protocol):
    """What :class:`FaultyServer` serves: ``render(path)`` → ``(status, body)``, no HTTP, no faults."""

    content_type: str
    charset: str | None

    def render(self, path: str, malformed: bool = False) -> tuple[int, str]: ...


class BooksSite:
    """Maps a path to ``(status, body)`` for one catalogue. No HTTP, no faults."""

    content_type = _HTML
    charset: str | None = None  # like the real site: no charset in the header, the page's <meta> declares it

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._all = list(range(catalog.n))
        self._categories = {(c.site_id, c.path): c for c in catalog.categories}

    def render(self, path: str, malformed: bool = False) -> tuple[int, str]:
        catalog = self.catalog
        if path in ("", "index.html"):
            return 200, listing_page(catalog, "index.html", "All products", self._all, 1,
                                     "catalogue/page-{n}.html")
        if path.startswith("catalogue/page-"):
            page = _page_number(path[len("catalogue/"):])
            if page and page <= catalog.pages:
                return 200, listing_page(catalog, path, "All products", self._all, page, "page-{n}.html")
        elif path.startswith("catalogue/category/books_1/"):
            page = _page_number(path[len("catalogue/category/books_1/"):])
            if page and page <= catalog.pages:
                return 200, listing_page(catalog, path, "Books", self._all, page, "page-{n}.html")
        elif path.startswith("catalogue/category/"):
            match = _CATEGORY.fullmatch(path)
            if match:
                category = self._categories.get((int(match[2]), path.rsplit("/", 1)[0] + "/"))
                page = _page_number(match[3])
                if category and page:
                    indices = catalog.books_in(category)
                    if (page - 1) * 20 < max(1, len(indices)):
                        return 200, listing_page(catalog, path, category.name, indices, page,
                                                 "page-{n}.html")
        elif path.startswith("catalogue/"):
            match = _PRODUCT.fullmatch(path)
            index = catalog.index_of_site_id(int(match[2])) if match else None
            if index is not None:
                book = catalog.book(index)
                if book.path == path:
                    return 200, product_page(book, malformed=malformed)
        return 404, "<html><body><h1>404 Not Found</h1></body></html>"


def _page_number(name: str) -> int | None:
    match = _PAGE.fullmatch(name)
    if not match:
        return None
    return int(match[1]) if match[1] else 1


ARRIVALS_KEPT = 200  # requests whose arrival is recorded (see FaultyServer.arrivals)


class FaultyServer:
    """Serves a :class:`Site` through the configured faults, counting every request."""

    plan: FaultPlan

    def __init__(self, site: Site, config: FaultConfig) -> None:
        self.site = site
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.timeline: dict[int, Counter[int]] = {}  # whole second (epoch) -> status counts
        self.dropped = 0
        self.clients: Counter[str] = Counter()
        self.agents: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once since the last reset
        self.answered = 0
        # client (address, port) pairs seen: one per TCP connection, so a client that does not keep
        # its connections alive shows as many more connections than requests in flight
        self.peers: set[tuple[str, int]] = set()
        # (requests in flight including this one, responses finished before it) for the first
        # ARRIVALS_KEPT requests: how a crawl opens (slow start, or a thundering herd)
        self.arrivals: list[tuple[int, int]] = []
        self.first_seen: dict[str, float] = {}  # path -> when it was first requested (epoch)
        self.service_times: list[float] = []  # seconds from arrival to answer, of 200s
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        if config.workers != getattr(getattr(self, "config", None), "workers", None):
            self.capacity = asyncio.Semaphore(config.workers) if config.workers else None
        self.config = config
        self.plan = FaultPlan(config) if not hasattr(self, "plan") else FaultPlan(config, self.plan.attempts)
        self.bucket = TokenBucket(config.rate_limit, config.burst) if config.rate_limit > 0 else None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path.lstrip("/")
        if path.startswith("_"):
            return await self._meta(path, request)
        if request.query_string:  # an API's pages differ by query (``api/quotes?page=2``)
            path += "?" + request.query_string
        self.requests[path] += 1
        arrived = time.monotonic()
        self.first_seen.setdefault(path, time.time())
        client = request.remote or ""
        self.clients[client] += 1
        self.agents[request.headers.get("User-Agent", "")] += 1
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername")[:2])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if len(self.arrivals) < ARRIVALS_KEPT:
            self.arrivals.append((self.in_flight, self.answered))
        try:
            if client in self.config.ban_clients:
                response: web.StreamResponse = _ban_page(self.config.ban_page)
            else:
                response = await self._respond(path, request)
        finally:
            self.in_flight -= 1
            self.answered += 1
        self.statuses[response.status] += 1
        if response.status == 200:
            self.service_times.append(time.monotonic() - arrived)
        self.timeline.setdefault(int(time.time()), Counter())[response.status] += 1
        return response

    async def _respond(self, path: str, request: web.BaseRequest) -> web.StreamResponse:
        cfg = self.config
        if self.bucket is not None:
            wait = self.bucket.take()
            if wait > 0:
                return _rate_limited(wait, cfg.retry_after)
        fault = self.plan.fault_for(path)
        if fault == "drop":
            self.dropped += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is written: the client sees a dropped connection
        if fault == "500":
            return web.Response(status=500, text="Internal Server Error")
        if fault == "503":
            return web.Response(status=503, text="Service Unavailable")
        if fault in ("429", "429-date"):
            form = "date" if fault == "429-date" else "seconds"
            return _rate_limited(cfg.fault_retry_after, form)
        if self.capacity is not None:
            async with self.capacity:  # a site with a fixed number of workers: beyond them, a queue
                await asyncio.sleep((cfg.latency_ms + random.uniform(0, cfg.latency_jitter_ms)) / 1000)
        elif cfg.latency_ms or cfg.latency_jitter_ms:
            await asyncio.sleep((cfg.latency_ms + random.uniform(0, cfg.latency_jitter_ms)) / 1000)
        if path == "robots.txt":
            return web.Response(text=_ROBOTS.format(cfg.robots_disallow), content_type="text/plain")
        malformed = self.plan.is_malformed(path)
        altered = malformed and bool(cfg.malformed_price or cfg.malformed_pad_kb)
        status, body = self.site.render(path, malformed=malformed and not altered)
        malformed = altered and status == 200 and bool(_PRODUCT.fullmatch(path))  # product pages only
        if malformed and cfg.malformed_price:
            body = _PRICE.sub(cfg.malformed_price, body)
        if malformed and cfg.malformed_pad_kb:
            body += "<!--" + "x" * (1024 * cfg.malformed_pad_kb) + "-->"
        return web.Response(status=status, body=body.encode(), content_type=self.site.content_type,
                            charset=self.site.charset)

    async def _meta(self, path: str, request: web.BaseRequest) -> web.Response:
        if path == "_stats":
            stats: dict[str, object] = {
                "requests": sum(self.requests.values()),
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "dropped": self.dropped,
                "connections": len(self.peers),
                "max_in_flight": self.max_in_flight,
                "clients": dict(self.clients),
                "config": asdict(self.config),
            }
            if request.query.get("arrivals"):
                stats["arrivals"] = self.arrivals
            if request.query.get("agents"):
                stats["user_agents"] = dict(self.agents)
            if request.query.get("paths"):
                stats["paths"] = dict(self.requests)
            if request.query.get("firsts"):  # when paths were first asked for: a crawl's own pace
                firsts = sorted(self.first_seen.values())
                stats["first_requests"] = {"paths": len(firsts), "first_at": firsts[0] if firsts else 0.0,
                                           "last_at": firsts[-1] if firsts else 0.0,
                                           "span_s": firsts[-1] - firsts[0] if firsts else 0.0}
            if self.service_times:
                ordered = sorted(self.service_times)
                stats["latency_p50_ms"] = 1000 * ordered[len(ordered) // 2]
            if request.query.get("timeline"):
                stats["timeline"] = {str(sec): {str(k): v for k, v in counts.items()}
                                     for sec, counts in sorted(self.timeline.items())}
            return web.json_response(stats)
        if path == "_control" and request.method == "POST":
            try:
                self.configure(self.config.updated(await request.json()))
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(asdict(self.config))
        if path == "_reset" and request.method == "POST":
            self.requests.clear()
            self.statuses.clear()
            self.timeline.clear()
            self.dropped = 0
            self.clients.clear()
            self.agents.clear()
            self.arrivals.clear()
            self.max_in_flight = self.in_flight
            self.peers.clear()
            self.first_seen.clear()
            self.service_times.clear()
            self.answered = 0
            self.plan.attempts.clear()
            return web.json_response({"ok": True})
        return web.json_response({"error": "not found"}, status=404)


def _ban_page(kind: str) -> web.Response:
    if kind == "captcha":
        return web.Response(text="<html><body><h1>Are you a robot?</h1><form id='captcha'>Please solve "
                                 "this CAPTCHA to continue.</form></body></html>", content_type=_HTML)
    return web.Response(status=403, text="Forbidden")


def _rate_limited(wait: float, form: str) -> web.Response:
    headers = {}
    value = retry_after_value(wait, form)
    if value is not None:
        headers["Retry-After"] = value
    return web.Response(status=429, text="Too Many Requests", headers=headers)


async def serve(catalog: Catalog, config: FaultConfig, host: str = "127.0.0.1", port: int = 0,
                ready: asyncio.Future[str] | None = None) -> None:
    """Serve until cancelled. ``ready`` (if given) receives the base URL once listening."""
    await serve_site(BooksSite(catalog), config, host, port, ready)


async def serve_site(site: Site, config: FaultConfig, host: str = "127.0.0.1", port: int = 0,
                     ready: asyncio.Future[str] | None = None) -> None:
    """Serve any :class:`Site` (books, quotes API) with the same fault knobs, until cancelled."""
    server = FaultyServer(site, config)
    low_level = web.Server(server.handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(low_level, host, port, backlog=2048)
    bound = listener.sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}/"
    if ready is not None:
        ready.set_result(url)
    async with listener:
        await listener.serve_forever()
