"""The shared frontier in Redis: pending, delayed and leased requests, moved atomically by Lua scripts so
no request is lost or handed out twice whatever fails between two commands. Keys and scripts:
docs/distributed.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis import Redis

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_REQUEUE = """
local function requeue(queue, member)
  local sep = string.find(member, ':', 1, true)
  redis.call('ZADD', queue, tonumber(string.sub(member, 1, sep - 1)), string.sub(member, sep + 1))
end
"""

TAKE = _NOW + _REQUEUE + """
-- KEYS: queue, delayed, leases, leased, seq, owners; ARGV: lease seconds, batch, worker, how many
local batch = tonumber(ARGV[2])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', KEYS[2], member)
  requeue(KEYS[1], member)
end
local reclaimed = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, batch)) do
  local member = redis.call('HGET', KEYS[4], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[6], id)
  if member then
    requeue(KEYS[1], member)
    reclaimed = reclaimed + 1
  end
end
local top = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1, 'WITHSCORES')
if #top == 0 then
  local soonest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #soonest == 0 then
    return {reclaimed}
  end
  return {reclaimed, tostring(tonumber(soonest[2]) - now)}  -- seconds until a delayed one is due
end
local out = {reclaimed, 'taken'}
for i = 1, #top, 2 do
  redis.call('ZREM', KEYS[1], top[i])
  local id = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), id)
  redis.call('HSET', KEYS[4], id, top[i + 1] .. ':' .. top[i])
  redis.call('HSET', KEYS[6], id, ARGV[3])
  table.insert(out, id)
  table.insert(out, top[i])
end
return out
"""

EXTEND = _NOW + """
-- KEYS: leases; ARGV: lease seconds, ids...  (only leases that still exist: XX)
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return n
"""

ENQUEUE = """
-- KEYS: queue, delayed, leases, leased, owners, seen (the dupefilter's key)
-- ARGV: target ('queue' or 'delayed'), score, member, seen check ('none', 'set' or 'bloom'),
--       #check args, check args..., leases to ack...
-- Check-and-push in one step: run twice (a reply lost to a Redis restart, then retried by the
-- client), it cannot drop a request as "already seen" that the first run never queued.
local checks = tonumber(ARGV[5])
local new = 1
if ARGV[4] == 'set' then
  new = redis.call('SADD', KEYS[6], ARGV[6])
elseif ARGV[4] == 'bloom' then
  new = 0
  for i = 6, 5 + checks do
    if redis.call('SETBIT', KEYS[6], ARGV[i], 1) == 0 then
      new = 1
    end
  end
end
if new == 0 then
  return 0
end
redis.call('ZADD', ARGV[1] == 'delayed' and KEYS[2] or KEYS[1], ARGV[2], ARGV[3])
for i = 6 + checks, #ARGV do  -- the leased request this one follows up is done
  redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('HDEL', KEYS[4], ARGV[i])
  redis.call('HDEL', KEYS[5], ARGV[i])
end
return 1
"""

CLAIM = """
-- KEYS: commits; ARGV: entry id, the entry as read, the entry to write  (compare and set)
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""

RELEASE = _REQUEUE + """
-- KEYS: queue, leases, leased, owners; ARGV: ids...  (give leased requests back: a graceful stop)
local n = 0
for i = 1, #ARGV do
  local member = redis.call('HGET', KEYS[3], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
  redis.call('HDEL', KEYS[4], ARGV[i])
  if member then
    requeue(KEYS[1], member)
    n = n + 1
  end
end
return n
"""


@dataclass(frozen=True)
class FrontierKeys:
    queue: str
    delayed: str
    leases: str
    leased: str
    seq: str
    owners: str
    commits: str

    @classmethod
    def under(cls, namespace: str) -> FrontierKeys:
        return cls(*(f"{namespace}:{name}" for name in
                     ("queue", "delayed", "leases", "leased", "lease_seq", "lease_owner", "commits")))

    def all(self) -> list[str]:
        return [self.queue, self.delayed, self.leases, self.leased, self.seq, self.owners]


@dataclass(frozen=True)
class SeenCheck:
    """How the dupefilter tells a new request: ``how`` is ``"set"`` (``args`` = [fingerprint], a
    Redis set at ``key``) or ``"bloom"`` (``args`` = bit offsets in a bitmap at ``key``)."""

    how: str
    key: str
    args: list[str | int]


@dataclass(frozen=True)
class Taken:
    lease: str
    payload: bytes


@dataclass(frozen=True)
class Counts:
    pending: int
    delayed: int
    leased: int

    @property
    def total(self) -> int:
        return self.pending + self.delayed + self.leased


class Frontier:
    """Redis operations on one crawl's frontier. Payloads are opaque bytes (serialized requests)."""

    def __init__(self, server: Redis, keys: FrontierKeys, *, lease_seconds: float, batch: int = 100,
                 worker: str = "") -> None:
        self.server = server
        self.worker = worker
        self.next_due_in: float | None = None
        self.keys = keys
        self.lease_seconds = lease_seconds
        self.batch = batch
        self._take = server.register_script(TAKE)
        self._extend = server.register_script(EXTEND)
        self._release = server.register_script(RELEASE)
        self._enqueue = server.register_script(ENQUEUE)
        self._claim = server.register_script(CLAIM)

    def enqueue(self, payload: bytes, priority: int, due: float | None = None, *,
                seen: SeenCheck | None = None, ack: Sequence[str] = ()) -> bool:
        """Queue a request (delayed until ``due``, epoch seconds, if given) unless ``seen`` says it
        was seen before, and ack the ``ack`` leases it follows up, in one atomic, retry-safe step.
        False: a duplicate (nothing queued, nothing acked)."""
        score: float
        if due is None:
            target, score, member = "queue", -priority, payload
        else:
            target, score, member = "delayed", due, _member(payload, priority)
        how, key, checks = ("none", self.keys.queue, []) if seen is None else (seen.how, seen.key, seen.args)
        keys = [self.keys.queue, self.keys.delayed, self.keys.leases, self.keys.leased, self.keys.owners, key]
        return bool(self._enqueue(keys=keys, args=[target, score, member, how, len(checks), *checks, *ack]))

    def push(self, payload: bytes, priority: int) -> None:
        self.enqueue(payload, priority)

    def push_delayed(self, payload: bytes, priority: int, due: float) -> None:
        self.enqueue(payload, priority, due)

    def transfer(self, ack: Sequence[str], payload: bytes, priority: int, due: float | None) -> None:
        """Push a follow-up of a leased request (a retry) and ack the lease, atomically: a crash
        between the two can neither lose the request nor run it twice."""
        self.enqueue(payload, priority, due, ack=ack)

    def take(self, count: int = 1) -> tuple[list[Taken], int]:
        """Up to ``count`` of the best pending requests, now leased to the caller, and how many
        expired leases this call put back in the queue. After an empty take, :attr:`next_due_in`
        says when the soonest delayed request is due (seconds; None if there is none)."""
        result = self._take(keys=self.keys.all(), args=[self.lease_seconds, self.batch, self.worker, count])
        reclaimed = int(result[0])
        self.next_due_in = None
        if len(result) == 2:
            self.next_due_in = max(0.0, float(result[1]))
            return [], reclaimed
        taken = [Taken(_text(result[i]), result[i + 1]) for i in range(2, len(result), 2)]
        return taken, reclaimed

    def extend(self, leases: Iterable[str]) -> int:
        leases = list(leases)
        if not leases:
            return 0
        return int(self._extend(keys=[self.keys.leases], args=[self.lease_seconds, *leases]))

    def ack(self, leases: Iterable[str]) -> None:
        leases = list(leases)
        if leases:
            pipe = self.server.pipeline(transaction=True)
            self._ack_into(pipe, leases)
            pipe.execute()

    def release(self, leases: Iterable[str]) -> int:
        leases = list(leases)
        if not leases:
            return 0
        return int(self._release(keys=[self.keys.queue, self.keys.leases, self.keys.leased, self.keys.owners],
                                 args=leases))

    # -- the commit journal: publishing a worker's parts and acking their leases, crash-safely -------

    def journal(self, entry: str, record: bytes, leases: Sequence[str]) -> None:
        """Record ``entry`` (what is about to be published for ``leases``) and park the leases, in one
        transaction: from here a crash cannot re-run them unless the entry is abandoned."""
        pipe = self.server.pipeline(transaction=True)
        pipe.hset(self.keys.commits, entry, record)
        for lease in leases:
            pipe.zadd(self.keys.leases, {lease: "+inf"}, xx=True)
        pipe.execute()

    def complete(self, entry: str, leases: Sequence[str]) -> None:
        """The entry's parts are published: ack its leases and drop it, in one transaction."""
        pipe = self.server.pipeline(transaction=True)
        self._ack_into(pipe, leases)
        pipe.hdel(self.keys.commits, entry)
        pipe.execute()

    def abandon(self, entry: str, leases: Sequence[str]) -> None:
        """The entry's parts are nowhere to be found: its leases expire now (the next take re-queues
        them) and it is dropped, in one transaction."""
        pipe = self.server.pipeline(transaction=True)
        for lease in leases:
            pipe.zadd(self.keys.leases, {lease: 0}, xx=True)
        pipe.hdel(self.keys.commits, entry)
        pipe.execute()

    def entries(self) -> dict[str, bytes]:
        return {_text(key): value if isinstance(value, bytes) else value.encode()
                for key, value in self.server.hgetall(self.keys.commits).items()}

    def claim(self, entry: str, seen: bytes, mine: bytes) -> bool:
        """Take over ``entry`` (still as ``seen``) by writing ``mine``; False if someone else did."""
        return bool(self._claim(keys=[self.keys.commits], args=[entry, seen, mine]))

    def counts(self) -> Counts:
        pipe = self.server.pipeline(transaction=False)
        for key in (self.keys.queue, self.keys.delayed, self.keys.leases):
            pipe.zcard(key)
        pending, delayed, leased = pipe.execute()
        return Counts(pending, delayed, leased)

    def clear(self) -> None:
        self.server.delete(*self.keys.all(), self.keys.commits)

    def _ack_into(self, pipe, leases: Sequence[str]) -> None:
        if leases:
            pipe.zrem(self.keys.leases, *leases)
            pipe.hdel(self.keys.leased, *leases)
            pipe.hdel(self.keys.owners, *leases)


def _text(value: bytes | int | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _member(payload: bytes, priority: int) -> bytes:
    return f"{-priority}:".encode() + payload
