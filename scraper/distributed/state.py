"""What Redis holds for one crawl, read before a worker joins it. A dead run's leftovers (a dupefilter
with no frontier and no live worker) would make every request a duplicate and the crawl "finish" with
nothing, so they stop the start until the user says what to do with them. An epoch key marks a run:
if it vanishes mid-crawl, Redis lost the frontier (a restart without persistence, a flush), and the
workers must stop rather than finish over missing data."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from scraper.config import CannotStart, InvalidSetting
from scraper.distributed.frontier import FrontierKeys

DEFAULT_PREFIX = "scraper:%(spider)s"


class RedisLeftovers(CannotStart):
    """Redis holds what a dead run left; the message says how to clear or keep it."""


@dataclass(frozen=True)
class Keys:
    """The keys of one crawl's namespace (every one of them starts with ``namespace:``)."""

    namespace: str

    @property
    def dupefilter(self) -> str:
        return f"{self.namespace}:dupefilter"

    @property
    def workers(self) -> str:
        return f"{self.namespace}:workers"

    @property
    def epoch(self) -> str:
        return f"{self.namespace}:epoch"

    @property
    def finished(self) -> str:
        """Set by a worker that finished the crawl but left the clearing to another that seemed alive."""
        return f"{self.namespace}:finished"

    @property
    def frontier(self) -> FrontierKeys:
        return FrontierKeys.under(self.namespace)


def namespace(template: str, spider_name: str, attributes: Mapping[str, Any], *,
              setting: str = "REDIS_KEY_PREFIX") -> str:
    """A key template (``REDIS_KEY_PREFIX``) filled in with the spider's name and attributes."""
    try:
        return template % {**attributes, "spider": spider_name, "name": spider_name}
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidSetting(setting, template, f"known placeholders ({exc})") from None


@dataclass(frozen=True)
class RunState:
    seen: int  # requests the dupefilter remembers (1 for a Bloom filter: it cannot count)
    queued: int  # pending + delayed + leased
    live_workers: int  # workers whose heartbeat is recent
    finished: bool = False  # a worker saw the crawl finish (its keys are a finished crawl's, not a dead one's)

    @property
    def leftovers(self) -> bool:
        """A dupefilter nobody is using, over an empty frontier: a new run would crawl nothing."""
        return bool(self.seen) and not self.queued and not self.live_workers

    @property
    def abandoned(self) -> bool:
        """A frontier nobody is working on: a new worker resumes it."""
        return bool(self.queued) and not self.live_workers


def read_state(server: Redis, keys: Keys, alive_since: float) -> RunState:
    kind = server.type(keys.dupefilter)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    seen = server.scard(keys.dupefilter) if kind == "set" else int(kind != "none")
    frontier = keys.frontier
    pipe = server.pipeline(transaction=False)
    for key in (frontier.queue, frontier.delayed, frontier.leases):
        pipe.zcard(key)
    pipe.zcount(keys.workers, alive_since, "+inf")
    pipe.exists(keys.finished)
    pending, delayed, leased, live, finished = pipe.execute()
    return RunState(seen, pending + delayed + leased, live, bool(finished))


def join_epoch(server: Redis, keys: Keys) -> bytes:
    """The run's epoch: this worker's new one if it is the first, else the one it joins."""
    server.set(keys.epoch, uuid.uuid4().hex, nx=True)
    epoch = server.get(keys.epoch)
    assert isinstance(epoch, bytes)
    return epoch


def reset(server: Redis, keys: Keys) -> int:
    """Delete every key of the crawl's namespace; how many there were."""
    pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in keys.namespace) + ":*"
    found = list(server.scan_iter(match=pattern, count=1000))
    if found:
        server.delete(*found)
    return len(found)


def leftovers_message(state: RunState, keys: Keys, spider_name: str, where: str) -> str:
    return (f"Redis at {where} holds an earlier run's leftovers under {keys.namespace}: "
            f"{state.seen} seen request(s), an empty frontier, no live worker; this run would skip every "
            f"request as a duplicate and store nothing. Clear them with `scrapy redis_reset {spider_name}` "
            f"(or -s SCHEDULER_FLUSH_ON_START=True), or keep them on purpose with -s SCHEDULER_PERSIST=True")
