"""Two-phase commits of a worker's finished requests: their rows made durable, then their leases
acked, through a journal entry in Redis, so that a worker killed between the two phases is finished
by another instead of losing or repeating rows. The protocol is in docs/distributed.md."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import cast

from redis.exceptions import RedisError
from scrapy.crawler import Crawler

from scraper import signals as our_signals
from scraper.crawling import stats_of
from scraper.distributed.frontier import Frontier

logger = logging.getLogger(__name__)

Moves = list[list[str]]  # parts to publish: [hidden path, visible path] pairs, from the pipelines


class CommitJournal:
    """One worker's commits: :meth:`commit` journals (or, with nothing to publish, acks) finished
    leases; :meth:`publish` publishes the journalled parts and acks their leases; :meth:`recover`
    takes over the entries of dead workers."""

    def __init__(self, crawler: Crawler, frontier: Frontier, worker: str, *, workers_key: str,
                 lease_seconds: float, safe: Callable[[Exception], str]) -> None:
        self.crawler = crawler
        self.frontier = frontier
        self.worker = worker
        self.workers_key = workers_key
        self.lease_seconds = lease_seconds
        self.safe = safe  # an exception's text with the Redis password masked
        self._entry_ids = itertools.count()
        # entries of ours not yet completed (lease ids, moves), and moves whose journal write failed
        # (their parts stay hidden; the next commit journals them)
        self.journaled: dict[str, tuple[list[str], Moves]] = {}
        self.unjournaled: Moves = []
        self._publishing = asyncio.Lock()

    @property
    def hidden_parts(self) -> int:
        """Parts written but not yet published."""
        return len(self.unjournaled) + sum(len(moves) for _, moves in self.journaled.values())

    async def commit(self, done: list[str]) -> None:
        """Make the rows of the ``done`` leases' requests durable (the pipelines close their parts,
        hidden, on the ``checkpoint`` signal) and journal them with their leases; with no part to
        publish, ack the leases at once. Raises :class:`RedisError` (retried at the next commit)."""
        results = await self.crawler.signals.send_catch_log_async(signal=our_signals.checkpoint)
        moves = [*self.unjournaled, *(move for _, result in results if isinstance(result, list)
                                      for move in result)]
        self.unjournaled = []
        try:
            if moves:
                entry = f"{self.worker}:{next(self._entry_ids)}"
                record = json.dumps({"worker": self.worker, "leases": done, "moves": moves})
                self.frontier.journal(entry, record.encode(), done)
                self.journaled[entry] = (done, moves)
            else:
                self.frontier.ack(done)
                self._stat("redis/acked", len(done))
        except RedisError:
            self.unjournaled = moves
            raise

    async def publish(self) -> None:
        """Publish the parts of our journal entries, then ack their leases and drop the entries. Parts
        that are nowhere to be found give their leases back (re-run); errors leave the entry for later."""
        async with self._publishing:
            for entry, (leases, moves) in list(self.journaled.items()):
                results = await self.crawler.signals.send_catch_log_async(signal=our_signals.publish,
                                                                          moves=moves)
                answers = [result for _, result in results if isinstance(result, bool)]
                try:
                    if answers and all(answers):
                        self.frontier.complete(entry, leases)
                        self._stat("redis/acked", len(leases))
                    elif False in answers:
                        logger.warning("Parts of journal entry %s are nowhere to be found; its %s "
                                       "request(s) will be re-run", entry, len(leases))
                        self.frontier.abandon(entry, leases)
                        self._stat("redis/journal/abandoned")
                    else:  # publishing failed (logged by the signal): try again at the next checkpoint
                        continue
                except RedisError as exc:
                    logger.warning("Redis error while acking: %s (retried at the next checkpoint)",
                                   self.safe(exc))
                    continue
                self.journaled.pop(entry, None)

    async def recover(self) -> None:
        """Take over the journal entries of workers whose heartbeat is ``REDIS_LEASE_SECONDS`` old
        (killed between journaling and acking) and finish them as if they were ours."""
        try:
            entries = self.frontier.entries()
            if not entries:
                return
            heartbeats = cast(list[tuple[bytes, float]],
                              self.frontier.server.zrange(self.workers_key, 0, -1, withscores=True))
            beats = {worker.decode(): beat for worker, beat in heartbeats}
            cutoff = time.time() - self.lease_seconds
            for entry, seen in entries.items():
                data = json.loads(seen)
                if data["worker"] == self.worker or beats.get(data["worker"], 0.0) >= cutoff:
                    continue
                mine = json.dumps({**data, "worker": self.worker}).encode()
                if self.frontier.claim(entry, seen, mine):
                    logger.info("Finishing the commit of a dead worker (%s, %s request(s))",
                                data["worker"], len(data["leases"]))
                    self._stat("redis/journal/recovered")
                    self.journaled[entry] = (data["leases"], data["moves"])
            await self.publish()
        except RedisError as exc:
            logger.warning("Redis error while checking for unfinished commits: %s", self.safe(exc))

    def _stat(self, key: str, count: int = 1) -> None:
        stats_of(self.crawler).inc_value(key, count)
