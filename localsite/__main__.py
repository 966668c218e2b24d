"""``python -m localsite``: serve the local books site and print its URL."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable

from .catalog import Catalog
from .faults import BAN_PAGES, FAULT_KINDS, RETRY_AFTER_FORMS, FaultConfig
from .server import BooksSite, Site, serve_site


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localsite", description=__doc__)
    parser.add_argument("--books", type=int, default=1000, help="catalogue size (default 1000)")
    add_server_args(parser)
    return parser


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """Seed, address and every fault knob: shared by the books site and the quotes API."""
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (default)")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=0,
                        help="requests served at once, each taking the latency; more queue (0 = any): "
                             "a site whose latency grows with load")
    parser.add_argument("--rate-limit", type=float, default=0.0, help="token bucket, requests/s")
    parser.add_argument("--burst", type=int, default=0, help="token bucket size (default: rate)")
    parser.add_argument("--retry-after", choices=RETRY_AFTER_FORMS, default="seconds",
                        help="Retry-After form on rate-limit 429s")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="fraction of paths that fail transiently")
    parser.add_argument("--fault-kinds", default="500,503,429,drop",
                        help=f"comma-separated, from {','.join(FAULT_KINDS)}")
    parser.add_argument("--fault-times", type=int, default=1,
                        help="first N requests of a faulty path fail")
    parser.add_argument("--fault-retry-after", type=float, default=1.0)
    parser.add_argument("--fault-match", default="", help="regex: only matching paths can fault")
    parser.add_argument("--malformed-rate", type=float, default=0.0,
                        help="fraction of pages served malformed (books: a product page without "
                             "its UPC; quotes API: a page whose first quote has no text)")
    parser.add_argument("--malformed-price", default="",
                        help="malformed product pages keep their UPC and show this price instead")
    parser.add_argument("--malformed-pad-kb", type=int, default=0,
                        help="malformed pages keep their UPC and are padded with this many KiB")
    parser.add_argument("--ban-clients", default="", help="comma-separated client IPs to ban")
    parser.add_argument("--ban-page", choices=BAN_PAGES, default="403",
                        help="what a banned client gets: 403, or a 200 captcha page")
    parser.add_argument("--robots-disallow", default="",
                        help='robots.txt "Disallow:" for every user agent ("/" = the whole site)')


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    catalog = Catalog(args.books, args.seed)
    run_site(BooksSite(catalog), fault_config(args),
             f"Books site ({catalog.n} books, seed {catalog.seed})", args.host, args.port)


def fault_config(args: argparse.Namespace) -> FaultConfig:
    try:
        return FaultConfig(
            latency_ms=args.latency_ms, latency_jitter_ms=args.latency_jitter_ms, workers=args.workers,
            rate_limit=args.rate_limit, burst=args.burst, retry_after=args.retry_after,
            fault_rate=args.fault_rate, fault_kinds=tuple(filter(None, args.fault_kinds.split(","))),
            fault_times=args.fault_times, fault_retry_after=args.fault_retry_after,
            fault_match=args.fault_match,
            malformed_rate=args.malformed_rate, malformed_price=args.malformed_price,
            malformed_pad_kb=args.malformed_pad_kb, seed=args.seed,
            ban_clients=tuple(filter(None, args.ban_clients.split(","))), ban_page=args.ban_page,
            robots_disallow=args.robots_disallow,
        )
    except ValueError as exc:
        sys.exit(f"error: {exc}")


def run_site(site: Site, config: FaultConfig, title: str, host: str, port: int,
             on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; the first line printed is ``<title> at <url>`` (what
    :class:`~localsite.process.ServerProcess` waits for); ``on_ready`` gets the URL first."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str] = loop.create_future()
        task = asyncio.ensure_future(serve_site(site, config, host, port, ready))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        url = await ready
        if on_ready is not None:
            on_ready(url)
        print(f"{title} at {url}", flush=True)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run())


if __name__ == "__main__":
    main()
