"""Project signals (connect with ``crawler.signals.connect(handler, signal=...)``)."""

#: Something accepted by the crawl could not be completed and is recorded for re-driving instead
#: of being lost. Handlers receive ``record`` (a JSON-serialisable dict with at least ``kind``,
#: ``reason`` and ``url``).
dead_letter = object()

#: A site started a new rate-limit backoff event (a burst of 429s counts once). Handlers receive
#: ``site`` (the download slot key), ``delay`` (seconds) and ``status``. The adaptive-concurrency
#: controller listens to slow the site down.
site_backoff = object()

#: Make everything received so far durable (sent by the Redis scheduler before it acks leases; it
#: awaits the handlers). The Parquet pipeline closes its open parts. Handlers take no arguments and
#: may be coroutines.
checkpoint = object()
