"""Shared duplicate filter in Redis, keyed by Scrapy's configured request fingerprinter. scrapy-redis's
``RFPDupeFilter`` hashes requests its own way and deletes the shared set when any one worker closes;
this subclass uses the crawler's fingerprinter, never clears on close (the scheduler clears a finished
crawl), and offers a Bloom filter checked and set in one Lua script (sizing: docs/distributed.md)."""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from redis import Redis
from scrapy import Request
from scrapy_redis.dupefilter import RFPDupeFilter

from scraper.distributed.frontier import SeenCheck

logger = logging.getLogger(__name__)

MAX_BLOOM_BITS = 2**32  # one Redis string holds at most 512 MiB

BLOOM_CHECK_AND_SET = """
-- KEYS: the bitmap; ARGV: bit offsets. Returns 1 if any bit was unset (a new request).
local new = 0
for i = 1, #ARGV do
  if redis.call('SETBIT', KEYS[1], ARGV[i], 1) == 0 then
    new = 1
  end
end
return new
"""


def bloom_size(capacity: int, error_rate: float) -> tuple[int, int]:
    """Bits ``m`` and hash count ``k`` for ``capacity`` items at ``error_rate``."""
    bits = math.ceil(-capacity * math.log(error_rate) / math.log(2) ** 2)
    hashes = max(1, round(bits / capacity * math.log(2)))
    return min(bits, MAX_BLOOM_BITS), hashes


class LeasingDupeFilter(RFPDupeFilter):
    def __init__(self, server: Redis, key: str, fingerprinter: Any, *, debug: bool = False,
                 bloom: tuple[int, int] | None = None) -> None:
        super().__init__(server, key, debug=debug)
        self.fingerprinter = fingerprinter
        self.bloom = bloom
        self._bloom_script = server.register_script(BLOOM_CHECK_AND_SET) if bloom else None

    def request_fingerprint(self, request: Request) -> str:
        return self.fingerprinter.fingerprint(request).hex()

    def request_seen(self, request: Request) -> bool:
        if self.bloom is None:
            return super().request_seen(request)
        assert self._bloom_script is not None
        return not self._bloom_script(keys=[self.key], args=self._offsets(request))

    def seen_check(self, request: Request) -> SeenCheck:
        """The check :meth:`Frontier.enqueue` runs in the same atomic step as the push (the
        scheduler's way in: ``request_seen`` then a push would lose a request whose ``SADD`` ran
        but whose reply was lost to a Redis restart, since the retried ``SADD`` says "seen")."""
        if self.bloom is None:
            return SeenCheck("set", self.key, [self.request_fingerprint(request)])
        return SeenCheck("bloom", self.key, list(self._offsets(request)))

    def _offsets(self, request: Request) -> list[int]:
        bits, hashes = self.bloom  # type: ignore[misc]
        digest = hashlib.blake2b(self.fingerprinter.fingerprint(request), digest_size=16).digest()
        h1, h2 = int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big") | 1
        return [(h1 + i * h2) % bits for i in range(hashes)]  # double hashing (Kirsch-Mitzenmacher)

    def close(self, reason: str = "") -> None:
        """Keep the shared set: other workers are still using it."""

    def log(self, request: Request, spider: Any = None) -> None:
        if self.debug:
            logger.debug("Filtered duplicate request: %s", request)
        elif self.logdupes:  # type: ignore[has-type]  # (set by scrapy-redis's __init__)
            logger.debug("Filtered duplicate request %s - no more duplicates will be shown "
                         "(see DUPEFILTER_DEBUG to show all duplicates)", request)
            self.logdupes = False
