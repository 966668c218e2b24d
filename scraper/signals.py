"""Project signals (connect with ``crawler.signals.connect(handler, signal=...)``)."""

from __future__ import annotations

from typing import Any

#: Something accepted by the crawl could not be completed and is recorded for re-driving instead
#: of being lost. Handlers receive ``record`` (a JSON-serialisable dict with at least ``kind``,
#: ``reason`` and ``url``; a request's also :func:`request_fields`, so ``scrapy redrive`` can re-run it).
dead_letter = object()


def request_fields(request: Any) -> dict[str, Any]:
    """What a dead letter keeps of a request to re-run it: URL, method and the spider callback's name."""
    callback = getattr(request, "callback", None)
    return {"url": request.url, "method": request.method,
            "callback": getattr(callback, "__name__", None) if callable(callback) else None}

#: A site started a new rate-limit backoff event (a burst of 429s counts once). Handlers receive
#: ``site`` (the download slot key), ``delay`` (seconds) and ``status``. Informational: whether the
#: site slows is the adaptive controller's own decision.
site_backoff = object()

#: A slot's pace was relaxed (or lifted): requests waiting in the scheduler for a paced start in
#: that download slot may go now, to be paced anew. Handlers receive ``slot`` (the slot key).
pace_relaxed = object()

#: Publish in two phases from now on (sent once by the Redis scheduler when it opens): closed
#: output parts stay hidden until a :data:`publish` names them. Handlers take no arguments.
hold_publication = object()

#: Make everything received so far durable (sent by the Redis scheduler before it acks leases; it
#: awaits the handlers). The Parquet pipeline closes its open parts and returns the moves that
#: publish them (a list of ``[hidden, final]`` paths). Handlers take no arguments and may be
#: coroutines.
checkpoint = object()

#: Publish parts (``moves``, from a :data:`checkpoint`, possibly another worker's). Handlers return
#: True once every part is in place, False if some part is nowhere to be found.
publish = object()
