"""Batched, bounded normalisation in worker processes, driven from an asyncio event loop (no Scrapy):
CPU-heavy cleaning must never run on the reactor thread, and a worker that crashes must cost one batch,
not the crawl. Batching, back-pressure, the pipe transport and crash handling: docs/normalisation.md."""

from __future__ import annotations

import asyncio
import atexit
import importlib
import logging
import multiprocessing
import multiprocessing.util  # registers its exit handler first, so ours (LIFO) runs before it
import os
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from scraper.normalize.pipes import FramedPipes

logger = logging.getLogger(__name__)

ORPHAN_CHECK_INTERVAL = 1.0  # seconds between a busy worker's checks that its crawl process is alive
SHUTDOWN_GRACE = 10.0  # seconds a closing normalizer's workers get to exit on their own before SIGKILL
CRASH_ATTEMPTS = 2  # a record alone in a worker that crashes it this many times fails
START_ATTEMPTS = 2  # new workers per worker slot that die before a no-op, in a row, before giving up
MP_CONTEXTS = ("forkserver", "spawn")  # never a bare fork of the multi-threaded reactor process
_PICKLE = pickle.HIGHEST_PROTOCOL


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


@cache
def load_function(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_one(path: str, record: dict[str, Any]) -> Outcome:
    try:
        return Outcome(value=load_function(path)(record))
    except Exception as exc:  # one bad record must not sink its batch
        return _failed(exc)


def _failed(exc: BaseException) -> Outcome:
    summary = "".join(traceback.format_exception(exc, limit=-3)).strip()
    return Outcome(error=f"{type(exc).__name__}: {exc}", traceback=summary[-2000:])


# On the wire a batch is ``(function paths, records)``, one path per record (pickle sends a repeated
# path once), and comes back as one compact tuple per record: ``(True, changed fields, removed field
# names)`` or ``(False, error, traceback)``. Only what the function changed travels back (a book's
# long description usually does not change), which keeps unpickling in the crawl process, the one
# that competes with the workers for the CPU, small. A batch the worker cannot unpickle comes back as
# one ``(False, error, traceback)`` for the whole batch; a no-op (``None``) comes back as the pid.
Wire = tuple[bool, Any, Any]


def run_batch(paths: list[str], records: list[dict[str, Any]]) -> list[Wire]:
    """One wire outcome per record, in order."""
    return [_to_wire(record, run_one(path, record)) for path, record in zip(paths, records, strict=True)]


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
    value = dict(record)
    for key in second:
        del value[key]
    value.update(first)
    return Outcome(value=value)


def _dump_reply(wires: list[Wire]) -> bytes:
    """The reply for a batch; a result that cannot be pickled becomes that record's error alone."""
    try:
        return pickle.dumps(wires, _PICKLE)
    except Exception:
        safe = []
        for wire in wires:
            try:
                pickle.dumps(wire, _PICKLE)
                safe.append(wire)
            except Exception as exc:
                failed = _failed(exc)
                safe.append((False, f"unpicklable result: {failed.error}", failed.traceback))
        return pickle.dumps(safe, _PICKLE)


def worker_main(commands: Connection, results: Connection, parent_pid: int) -> None:
    """A worker process: answer each command on ``commands`` in order, until the pipe closes."""
    init_worker(parent_pid)
    while True:
        try:
            message = commands.recv_bytes()
        except EOFError:  # closed by the crawl process (shutdown), or it died
            return
        try:
            command = pickle.loads(message)
        except Exception as exc:
            failed = _failed(exc)
            results.send_bytes(pickle.dumps((False, f"unpicklable batch: {failed.error}", failed.traceback)))
            continue
        reply = pickle.dumps(os.getpid()) if command is None else _dump_reply(run_batch(*command))
        try:
            results.send_bytes(reply)
        except BrokenPipeError:  # the crawl process is gone
            return


def init_worker(parent_pid: int) -> None:
    """Leave SIGINT/SIGTERM to the parent, and exit when the parent is gone."""
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


# Worker processes started by this process and not yet reaped, killed at interpreter exit.
_LIVE: dict[BaseProcess, int] = {}


@atexit.register
def _kill_leftovers() -> None:
    """Workers ignore SIGTERM, and multiprocessing's exit handler would SIGTERM and join them."""
    for process, owner in list(_LIVE.items()):
        if owner == os.getpid() and process.is_alive():
            process.kill()


def _reap(processes: list[BaseProcess], grace: float = SHUTDOWN_GRACE) -> None:
    """Wait for workers told to exit; kill any that are still there after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
        _LIVE.pop(process, None)


def _settle(future: asyncio.Future[Any], value: Any = None) -> bool:
    """Set ``future``'s result unless it is done already (its waiter was cancelled); whether it was."""
    if future.done():
        return False
    future.set_result(value)
    return True


@dataclass(slots=True, eq=False)
class _Batch:
    paths: list[str]
    records: list[dict[str, Any]]
    futures: list[asyncio.Future[Outcome]]
    payload: bytes = b""
    crashes: int = 0  # a lone record: how many workers it has crashed


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    pipes: FramedPipes | None = None
    batches: deque[_Batch | None] = field(default_factory=deque)  # sent, in order; None = the no-op


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
        self.unusable: str | None = None  # why the workers cannot run anything (then: no restarts)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._dead: list[BaseProcess] = []  # to reap at close
        self._failed_starts = 0  # new workers in a row that died before answering the no-op
        self._in_flight = 0  # batches in the workers
        # The batch being formed: parallel lists, and when its records arrived (for queue-wait stats).
        self._paths: list[str] = []
        self._records: list[dict[str, Any]] = []
        self._futures: list[asyncio.Future[Outcome]] = []
        self._first_at = 0.0
        self._arrived_total = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._due = False  # the forming batch has waited max_wait: send it as soon as a slot frees
        self._room: deque[asyncio.Future[None]] = deque()  # submitters waiting for the batch to go
        self._blocked = 0  # submitters waiting for room, not yet in the forming batch
        self._idle: list[asyncio.Future[None]] = []  # drain() callers
        self._draining = 0

    @property
    def waiting(self) -> int:
        """Records accepted but not yet sent to a worker (at most one batch)."""
        return len(self._records)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def start(self) -> None:
        """Start the workers now (fail fast)."""
        if self.workers == 0 or self._loop is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # called before the reactor runs its loop (e.g. from open_spider)
            self._loop = asyncio.get_event_loop()
        for _ in range(self.workers):
            self._spawn()

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
        loop = self._loop
        assert loop is not None
        while len(self._records) >= self.batch_size:  # a whole batch already waits: backpressure
            waiter = loop.create_future()
            self._room.append(waiter)
            self._blocked += 1
            try:
                await waiter
            finally:
                self._blocked -= 1
                self._wake_idle()
        future = loop.create_future()
        now = loop.time()
        if not self._records:
            self._first_at = now
            self._timer = loop.call_later(self.max_wait, self._on_due)
        self._paths.append(path)
        self._records.append(record)
        self._futures.append(future)
        self._arrived_total += now
        if len(self._records) >= self.batch_size or self._draining:
            self._send_batch()
        return await future

    async def drain(self) -> None:
        """Return once every submitted record has its outcome (no waiting for batches to fill)."""
        if self._loop is None:
            return
        self._draining += 1
        try:
            while self._records or self._in_flight or self._blocked:
                self._send_batch()
                waiter = self._loop.create_future()
                self._idle.append(waiter)
                await waiter
        finally:
            self._draining -= 1

    async def close(self) -> None:
        await self.drain()
        if self._loop is None:
            return
        workers, self._workers = self._workers, []
        for worker in workers:
            self._detach(worker)  # the worker reads the end of its command pipe and exits
        processes = [w.process for w in workers] + self._dead
        self._dead = []
        loop, self._loop = self._loop, None
        await loop.run_in_executor(None, _reap, processes)

    # -- sending ---------------------------------------------------------------------------------

    def _on_due(self) -> None:
        self._timer = None
        self._due = True
        self._send_batch()

    def _send_batch(self) -> None:
        """Send the forming batch if it is due (full, waited long enough, or draining) and a slot is
        free; then let waiting submitters fill the next one."""
        if not self._records or self._in_flight >= self.max_pending:
            return
        if len(self._records) < self.batch_size and not self._due and not self._draining:
            return
        assert self._loop is not None
        batch = _Batch(self._paths, self._records, self._futures)
        now = self._loop.time()
        self.stats.queue_wait_total += len(batch.records) * now - self._arrived_total
        self.stats.queue_wait_max = max(self.stats.queue_wait_max, now - self._first_at)
        self.stats.batches += 1
        self._paths, self._records, self._futures = [], [], []
        self._arrived_total = 0.0
        self._due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        room = self.batch_size
        while room and self._room:
            room -= _settle(self._room.popleft())
        self._dispatch(batch)

    def _dispatch(self, batch: _Batch) -> None:
        """Hand ``batch`` to the worker with the fewest batches; fail it if there is none."""
        if not batch.payload:
            encoded = self._encode(batch)
            if encoded is None:
                return
            batch = encoded
        if not self._workers:
            self._fail(batch, self.unusable or "no normalisation worker is running")
            return
        worker = min(self._workers, key=lambda w: len(w.batches))
        worker.batches.append(batch)
        self._in_flight += 1
        self._write(worker, batch.payload)

    def _encode(self, batch: _Batch) -> _Batch | None:
        """``batch`` with its payload; records that cannot be pickled fail alone, here."""
        try:
            batch.payload = pickle.dumps((batch.paths, batch.records), _PICKLE)
            return batch
        except Exception:
            pass
        keep = []
        for index, record in enumerate(batch.records):
            try:
                pickle.dumps(record, _PICKLE)
                keep.append(index)
            except Exception as exc:
                failed = _failed(exc)
                self._outcome(batch.futures[index], Outcome(error=f"unpicklable record: {failed.error}",
                                                            traceback=failed.traceback))
        if not keep:
            self._settled()
            return None
        kept = _Batch([batch.paths[i] for i in keep], [batch.records[i] for i in keep],
                      [batch.futures[i] for i in keep], crashes=batch.crashes)
        kept.payload = pickle.dumps((kept.paths, kept.records), _PICKLE)
        return kept

    def _write(self, worker: _Worker, payload: bytes) -> None:
        assert worker.pipes is not None
        worker.pipes.send(payload)

    # -- receiving -------------------------------------------------------------------------------

    def _on_frame(self, worker: _Worker, frame: bytes) -> None:
        try:
            reply = pickle.loads(frame)
        except Exception as exc:  # e.g. a result type this process cannot import
            failed = _failed(exc)
            reply = (False, f"unreadable result: {failed.error}", failed.traceback)
        self._on_reply(worker, worker.batches.popleft(), reply)

    def _on_reply(self, worker: _Worker, batch: _Batch | None, reply: Any) -> None:
        if batch is None:  # the no-op: this worker can run things
            self._failed_starts = 0
            return
        self._in_flight -= 1
        if isinstance(reply, tuple):  # the batch, or its result, could not be unpickled
            if len(batch.records) == 1:
                self._outcome(batch.futures[0], Outcome(error=reply[1], traceback=reply[2]))
            else:
                for lone in self._split(batch):
                    self._dispatch(lone)
        else:
            for future, record, wire in zip(batch.futures, batch.records, reply, strict=True):
                self._outcome(future, from_wire(record, wire))
        self._settled()

    def _outcome(self, future: asyncio.Future[Outcome], outcome: Outcome) -> None:
        self.stats.errors += not outcome.ok
        _settle(future, outcome)

    def _fail(self, batch: _Batch, error: str) -> None:
        for future in batch.futures:
            self._outcome(future, Outcome(error=error))
        self._settled()

    def _settled(self) -> None:
        """Something finished: send the next batch if it may go, and wake drain() to look again."""
        self._send_batch()
        self._wake_idle()

    def _wake_idle(self) -> None:
        idle, self._idle = self._idle, []
        for waiter in idle:
            _settle(waiter)

    @staticmethod
    def _split(batch: _Batch) -> list[_Batch]:
        return [_Batch([path], [record], [future])
                for path, record, future in zip(batch.paths, batch.records, batch.futures, strict=True)]

    # -- workers ---------------------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self._loop is not None
        context: Any = multiprocessing.get_context(self.mp_context)  # (typeshed's BaseContext has no Process)
        command_reader, command_writer = context.Pipe(duplex=False)
        result_reader, result_writer = context.Pipe(duplex=False)
        process = context.Process(target=worker_main, name="normalize-worker",
                                  args=(command_reader, result_writer, os.getpid()))
        try:
            process.start()
        except BaseException:
            command_writer.close()
            result_reader.close()
            raise
        finally:  # the worker has its own copies now; ours would hide its death (no end of pipe)
            command_reader.close()
            result_writer.close()
        _LIVE[process] = os.getpid()
        worker = _Worker(process)
        worker.pipes = FramedPipes(self._loop, command_writer, result_reader,
                                   on_frame=lambda frame: self._on_frame(worker, frame),
                                   on_closed=lambda: self._on_death(worker))
        self._workers.append(worker)
        worker.batches.append(None)
        self._write(worker, pickle.dumps(None))

    def _give_up(self, why: str) -> None:
        if self.unusable is not None:
            return
        self.unusable = f"WorkerCrashed: normalisation workers cannot start ({why})"
        logger.error("%s; every record now fails at once. Under forkserver/spawn a script "
                     "that starts a crawl needs an `if __name__ == \"__main__\":` guard.", self.unusable)

    def _detach(self, worker: _Worker) -> None:
        """Stop watching ``worker``'s pipes and close them (a live worker then exits)."""
        assert worker.pipes is not None
        worker.pipes.close()

    def _on_death(self, worker: _Worker) -> None:
        """``worker`` is gone: replace it, re-run the batch it was running one record at a time, and
        send the batches queued behind it again."""
        self._detach(worker)
        self._workers.remove(worker)
        if worker.process.is_alive():  # closed its result pipe but still runs: not ours any more
            worker.process.kill()
        self._dead.append(worker.process)
        pending = list(worker.batches)
        self._in_flight -= sum(batch is not None for batch in pending)
        running: _Batch | None = None
        if pending and pending[0] is None:  # died before its no-op: could not start
            pending.pop(0)
            self._failed_starts += 1
            logger.warning("Normalisation worker %s died before it could run anything",
                           worker.process.pid)
        else:
            running = pending.pop(0) if pending else None
            logger.warning("Normalisation worker %s crashed; starting another", worker.process.pid)
        if self._failed_starts >= START_ATTEMPTS * self.workers:
            self._give_up(f"{self._failed_starts} new workers in a row died before running a no-op")
        if self.unusable is None:
            try:
                self._spawn()
                self.stats.restarts += 1
            except Exception as exc:
                self._give_up(f"starting a worker failed: {type(exc).__name__}: {exc}")
        if running is not None:
            if len(running.records) > 1:
                pending[:0] = self._split(running)
            elif running.crashes + 1 < CRASH_ATTEMPTS:
                running.crashes += 1
                pending.insert(0, running)
            else:
                self._fail(running, "WorkerCrashed: the record crashed its worker "
                                    f"{CRASH_ATTEMPTS} times")
        for batch in pending:
            if batch is not None:
                self._dispatch(batch)
        self._settled()
