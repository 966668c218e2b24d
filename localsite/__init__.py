"""A local, deterministic copy of books.toscrape.com for tests, demos and benchmarks.

Same URL scheme and DOM structure as the real site, synthetic text generated from a seed, and a fast
aiohttp server with fault-injection knobs. ``python -m localsite --help`` runs it.
"""
