"""Proxy rotation: the pool (state, selection), the ban policy and the proxy-list sources.
Scrapy-free except the policy's exception types; the middleware is :mod:`scraper.middlewares.proxies`."""

