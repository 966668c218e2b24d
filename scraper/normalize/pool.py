"""Batched, bounded normalisation in a process pool, driven from an asyncio event loop. No Scrapy.

Measure → decide → act is not needed here; the shape is: callers ``await submit(func, record)``; a
dispatcher task gathers records into batches (``batch_size`` or ``max_wait``, whichever comes first)
and sends each batch to a worker; at most ``max_pending`` batches are in flight, and the pending
queue holds at most one batch, so a fast producer waits instead of piling records up in memory.

Failure handling, per record: a record whose function raises comes back as a failed
:class:`Outcome` (its batch-mates are unaffected). A worker crash (``BrokenProcessPool``) restarts the
pool and re-runs the batch's records one at a time, so a record that kills its worker takes only
itself down; a record that crashes a fresh worker :data:`CRASH_ATTEMPTS` times fails. Before that
re-run, the fresh pool must answer a no-op: workers that cannot even start (a script without an
``if __name__ == "__main__":`` guard under forkserver/spawn, a broken environment) would otherwise
restart the pool for every record. After :data:`START_ATTEMPTS` fresh pools fail the no-op, the
normalizer is :attr:`~BatchNormalizer.unusable`: every record, now and later, fails at once with
that reason, and there are no more restarts.

Workers ignore SIGINT and SIGTERM: a Ctrl-C sent to the whole process group would otherwise raise
``KeyboardInterrupt`` in them, surface through the futures and hang the crawl. The parent owns
shutdown, so it must also own their death: ``ProcessPoolExecutor`` stops the workers of a broken pool
with SIGTERM and then joins them, which would wait forever (and hang interpreter exit, joining its
manager thread), so a broken or closed pool's workers are SIGKILLed by us. A worker whose crawl
process died (``kill -9``) exits by itself within :data:`ORPHAN_CHECK_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

ORPHAN_CHECK_INTERVAL = 1.0  # seconds between a worker's checks that its crawl process is alive
SHUTDOWN_GRACE = 10.0  # seconds a closing pool's workers get to exit on their own before SIGKILL
CRASH_ATTEMPTS = 2  # a record alone in a fresh worker that crashes it this many times fails
START_ATTEMPTS = 2  # fresh pools that fail a no-op in a row before the normalizer gives up
MP_CONTEXTS = ("forkserver", "spawn")  # never a bare fork of the multi-threaded reactor process


@dataclass(slots=True)
class Outcome:
    """What became of one record: ``value`` (the function's result) or ``error`` + ``traceback``."""

    value: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class PoolStats:
    items: int = 0
    batches: int = 0
    errors: int = 0
    restarts: int = 0
    queue_wait_total: float = 0.0
    queue_wait_max: float = 0.0


@lru_cache(maxsize=None)
def load_function(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_one(path: str, record: dict[str, Any]) -> Outcome:
    try:
        return Outcome(value=load_function(path)(record))
    except Exception as exc:  # one bad record must not sink its batch
        summary = "".join(traceback.format_exception(exc, limit=-3)).strip()
        return Outcome(error=f"{type(exc).__name__}: {exc}", traceback=summary[-2000:])


# On the wire a batch is ``(function path, [record, ...])`` and comes back as one compact tuple per
# record: ``(True, changed fields, removed field names)`` or ``(False, error, traceback)``. Only what
# the function changed travels back (a book's long description usually does not change), which
# keeps unpickling in the crawl process, the one that competes with the workers for the CPU, small.
Wire = tuple[bool, Any, Any]


def run_batch(path: str, records: list[dict[str, Any]]) -> list[Wire]:
    """Worker entry point: one wire outcome per record, in order."""
    return [_to_wire(record, run_one(path, record)) for record in records]


def _to_wire(record: dict[str, Any], outcome: Outcome) -> Wire:
    if outcome.value is None:
        return False, outcome.error, outcome.traceback
    value = outcome.value
    changed = {key: new for key, new in value.items() if key not in record or not _same(record[key], new)}
    removed = tuple(key for key in record if key not in value)
    return True, changed, removed


_EXACT = (str, int, bool, bytes, type(None))  # types whose == means "identical value"


def _same(old: Any, new: Any) -> bool:
    """Unchanged for certain: the very object, or an equal str/int/bool/bytes/None. (Not ==
    alone: ``Decimal("1.50") == Decimal("1.5")``, ``1 == 1.0``, and equal datetimes in other zones.)"""
    return old is new or (type(old) is type(new) and type(new) in _EXACT and old == new)


def from_wire(record: dict[str, Any], wire: Wire) -> Outcome:
    """The full :class:`Outcome` of ``record`` from what its worker sent back."""
    ok, first, second = wire
    if not ok:
        return Outcome(error=first, traceback=second)
    value = {key: old for key, old in record.items() if key not in second}
    value.update(first)
    return Outcome(value=value)


def init_worker(parent_pid: int) -> None:
    """Pool initializer: leave SIGINT/SIGTERM to the parent, and exit when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=exit_when_orphaned, args=(parent_pid,), name="orphan-watch",
                     daemon=True).start()


def exit_when_orphaned(parent_pid: int, interval: float = ORPHAN_CHECK_INTERVAL) -> None:
    """With forkserver the worker's parent is the fork server, so watch the crawl process itself."""
    while True:
        time.sleep(interval)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid was reused by someone else's process: ours is gone
            os._exit(1)


def kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL a pool's worker processes (they ignore the SIGTERM the executor would send)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class _Entry:
    path: str
    record: dict[str, Any]
    future: asyncio.Future[Outcome]
    submitted: float = field(default_factory=time.monotonic)


class BatchNormalizer:
    """Runs ``function(record)`` for submitted records in ``workers`` processes (0 = inline)."""

    def __init__(self, *, workers: int, batch_size: int = 50, max_wait: float = 0.05,
                 max_pending: int = 4, mp_context: str = "forkserver") -> None:
        if mp_context not in MP_CONTEXTS:
            raise ValueError(f"mp_context must be one of {MP_CONTEXTS}")
        self.workers = workers
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_pending = max_pending
        self.mp_context = mp_context
        self.stats = PoolStats()
        self._pool: ProcessPoolExecutor | None = None
        self._queue: asyncio.Queue[_Entry] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._recovery: asyncio.Lock | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._more: asyncio.Future[None] | None = None  # the dispatcher waits on it for records
        self._draining = asyncio.Event()
        self.unusable: str | None = None  # why the workers cannot run anything (then: no restarts)

    def start(self) -> None:
        """Start the pool now (fail fast), and the dispatcher on the running loop."""
        if self.workers == 0 or self._dispatcher is not None:
            return
        self._pool = self._new_pool()
        self._queue = asyncio.Queue(maxsize=self.batch_size)
        self._slots = asyncio.Semaphore(self.max_pending)
        self._recovery = asyncio.Lock()
        self._dispatcher = asyncio.ensure_future(self._dispatch_loop())

    async def submit(self, path: str, record: dict[str, Any]) -> Outcome:
        self.stats.items += 1
        if self.workers == 0:  # inline: blocks the loop by design (debugging, baselines)
            outcome = run_one(path, record)
            self.stats.errors += not outcome.ok
            return outcome
        if self.unusable is not None:
            self.stats.errors += 1
            return Outcome(error=self.unusable)
        self.start()
        assert self._queue is not None
        entry = _Entry(path, record, asyncio.get_running_loop().create_future())
        await self._queue.put(entry)  # waits while a whole batch is already pending: backpressure
        self._wake_dispatcher()
        return await entry.future

    async def drain(self) -> None:
        """Return once every submitted record has its outcome (no waiting for batches to fill)."""
        if self._queue is None:
            return
        self._draining.set()
        self._wake_dispatcher()
        try:
            await self._queue.join()
        finally:
            self._draining.clear()

    async def close(self) -> None:
        await self.drain()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, self._shutdown, pool)

    @staticmethod
    def _shutdown(pool: ProcessPoolExecutor) -> None:
        """Stop idle workers the normal way; kill any that are still there (a broken pool's)."""
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            process.join(SHUTDOWN_GRACE)
            if process.is_alive():
                process.kill()
                process.join()

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self.mp_context)
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=init_worker,
                                   initargs=(os.getpid(),))
        # Start every worker now, before the executor's manager thread exists. With forkserver/spawn,
        # CPython starts workers on demand inside submit(), *after* waking the manager thread, which
        # may already be waiting on the old list of worker sentinels: the death of the new worker
        # then goes unnoticed and its batch waits forever. (Also: start-up cost is paid at open.)
        launch = getattr(pool, "_launch_processes", None)
        if launch is not None:
            launch()
        return pool

    async def _dispatch_loop(self) -> None:
        assert self._queue is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while True:
                while len(batch) < self.batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                remaining = deadline - loop.time()
                if len(batch) >= self.batch_size or remaining <= 0 or self._draining.is_set():
                    break
                await self._more_or_timeout(loop, remaining)
            await self._slots.acquire()  # at most max_pending batches in the pool
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _more_or_timeout(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Sleep until a record is submitted, a drain starts or ``timeout`` passes. One future and
        one timer per wake-up (not per record): a burst of records is then taken in one go."""
        self._more = waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._more = None

    def _wake_dispatcher(self) -> None:
        if self._more is not None:
            _wake(self._more)

    async def _run(self, batch: list[_Entry]) -> None:
        assert self._queue is not None and self._slots is not None
        now = time.monotonic()
        for entry in batch:
            wait = now - entry.submitted
            self.stats.queue_wait_total += wait
            self.stats.queue_wait_max = max(self.stats.queue_wait_max, wait)
        self.stats.batches += 1
        try:
            work = [(e.path, e.record) for e in batch]
            try:
                outcomes = await self._in_pool(work)
            except BrokenProcessPool:
                outcomes = await self._recover(work)
            for entry, outcome in zip(batch, outcomes, strict=True):
                self.stats.errors += not outcome.ok
                if not entry.future.done():
                    entry.future.set_result(outcome)
        except BaseException as exc:  # never leave a caller waiting forever
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_result(Outcome(error=f"{type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._slots.release()
            for _ in batch:
                self._queue.task_done()

    async def _in_pool(self, work: list[tuple[str, dict[str, Any]]]) -> list[Outcome]:
        """Run ``work`` in the pool: one task per function path (a batch usually has one)."""
        pool = self._pool
        assert pool is not None
        groups: dict[str, list[int]] = {}
        for index, (path, _) in enumerate(work):
            groups.setdefault(path, []).append(index)
        futures = [asyncio.wrap_future(pool.submit(run_batch, path, [work[i][1] for i in indexes]))
                   for path, indexes in groups.items()]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BrokenProcessPool):
                self._restart(pool)
            if isinstance(result, BaseException):
                raise result
        outcomes: list[Outcome] = [Outcome()] * len(work)
        for indexes, wires in zip(groups.values(), results, strict=True):
            for index, wire in zip(indexes, wires, strict=True):
                outcomes[index] = from_wire(work[index][1], wire)
        return outcomes

    async def _workers_start(self) -> bool:
        """Whether the (restarted) pool's workers can run anything at all: a no-op, restarting the
        pool each time it breaks, up to :data:`START_ATTEMPTS` times."""
        for _ in range(START_ATTEMPTS):
            pool = self._pool
            assert pool is not None
            try:
                await asyncio.wrap_future(pool.submit(os.getpid))
                return True
            except BrokenProcessPool:
                self._restart(pool)
        return False

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is not broken or self.unusable is not None:  # replaced already; or no more pools
            return
        logger.warning("Normalisation worker crashed; restarting the process pool")
        self.stats.restarts += 1
        kill_workers(broken)
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    async def _recover(self, work: list[tuple[str, dict[str, Any]]]) -> list[Outcome]:
        """Re-run a crashed batch one record at a time, so only a record that crashes fails."""
        assert self._recovery is not None
        outcomes = []
        async with self._recovery:
            if self.unusable is None and not await self._workers_start():
                self.unusable = (f"BrokenProcessPool: normalisation workers cannot start ({START_ATTEMPTS} "
                                 "fresh pools in a row died before running a no-op)")
                logger.error("%s; every record now fails at once. Under forkserver/spawn a script "
                             "that starts a crawl needs an `if __name__ == \"__main__\":` guard.",
                             self.unusable)
            if self.unusable is not None:
                return [Outcome(error=self.unusable) for _ in work]
            for item in work:
                for _ in range(CRASH_ATTEMPTS):
                    try:
                        outcomes.append((await self._in_pool([item]))[0])
                        break
                    except BrokenProcessPool:
                        continue
                else:
                    outcomes.append(Outcome(error="BrokenProcessPool: the record crashed its worker "
                                                  f"{CRASH_ATTEMPTS} times"))
        return outcomes
