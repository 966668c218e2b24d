"""Proxy rotation: the pool (state, selection), the ban policy and the proxy-list sources.
Scrapy-free except the policy's exception types; the middleware is :mod:`scraper.middlewares.proxies`."""

#: ``meta`` key: the masked name of the proxy :mod:`scraper.middlewares.proxies` routed a request
#: through (other components use it to tell proxied requests apart).
ROUTED_VIA = "_rotating_proxy"
