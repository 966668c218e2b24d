"""``python -m localsite.proxy``: a small HTTP forward proxy for tests, demos and benchmarks.

It forwards absolute-form requests (``GET http://host/path``), optionally requires Basic
``Proxy-Authorization``, and connects out *from* a chosen loopback address (``--source 127.0.0.3``)
so the local site can tell proxies apart and ban one (``--ban-clients``). ``GET /_stats`` on the
proxy itself reports how many requests it forwarded. It prints its URL once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import signal
import sys
from typing import Any

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length"}


class ForwardProxy:
    def __init__(self, source: str | None = None, auth: str | None = None) -> None:
        self.source = source
        self.auth = auth
        self.forwarded = 0
        self.refused_auth = 0
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        local_addr = (self.source, 0) if self.source else None
        connector = aiohttp.TCPConnector(local_addr=local_addr, limit=0)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        target = request.url
        if not request.raw_path.startswith("http"):  # origin-form: addressed to the proxy itself
            if request.path == "/_stats":
                return web.json_response({"forwarded": self.forwarded, "refused_auth": self.refused_auth})
            return web.Response(status=400, text="this is a forward proxy")
        if self.auth is not None and not self._authorized(request.headers.get("Proxy-Authorization", "")):
            self.refused_auth += 1
            return web.Response(status=407, headers={"Proxy-Authenticate": 'Basic realm="proxy"'})
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        self.forwarded += 1
        try:
            async with self.session.request(request.method, str(target), headers=headers, data=body or None,
                                            allow_redirects=False) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=upstream.status, body=payload, headers=out)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return web.Response(status=502, text=f"bad gateway: {type(exc).__name__}")

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            return base64.b64decode(encoded).decode() == self.auth
        except (binascii.Error, UnicodeDecodeError):
            return False


async def serve(proxy: ForwardProxy, host: str, port: int, ready: asyncio.Future[str]) -> None:
    await proxy.start()
    listener = await asyncio.get_running_loop().create_server(
        web.Server(proxy.handle, access_log=None), host, port, backlog=1024)
    ready.set_result(f"http://{host}:{listener.sockets[0].getsockname()[1]}")
    try:
        async with listener:
            await listener.serve_forever()
    finally:
        await proxy.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localsite.proxy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--source", default=None, help="local address to connect out from")
    parser.add_argument("--auth", default=None, help="user:password required in Proxy-Authorization")
    args = parser.parse_args(argv)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str] = loop.create_future()
        task = asyncio.ensure_future(serve(ForwardProxy(args.source, args.auth), args.host, args.port, ready))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        first: set[asyncio.Future[Any]] = {task, ready}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            print(f"Forward proxy at {ready.result()}", flush=True)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(run())
    except OSError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
