from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from scraper.normalize.pool import BatchNormalizer, Outcome, _to_wire, from_wire
from tests.helpers import ROOT, wait_for
from tests.normalize_helpers import OnlyHere

FUNC = "tests.normalize_helpers.upper"


async def run_all(normalizer: BatchNormalizer, records: list[dict]) -> list:
    try:
        return await asyncio.gather(*(normalizer.submit(FUNC, r) for r in records))
    finally:
        await normalizer.close()


def records(n: int, **flags: set[int]) -> list[dict]:
    return [{"n": i, "text": f"t{i}", **{k: i in v for k, v in flags.items()}} for i in range(n)]


@pytest.mark.parametrize("context", ["forkserver", "spawn"])
def test_pool_runs_in_other_processes_in_batches(context: str) -> None:
    normalizer = BatchNormalizer(workers=2, batch_size=10, max_wait=0.05, mp_context=context)
    outcomes = asyncio.run(run_all(normalizer, records(45)))
    assert [o.value["text"] for o in outcomes] == [f"T{i}" for i in range(45)]
    assert all(o.value["pid"] != os.getpid() for o in outcomes)
    assert normalizer.stats.items == 45 and 5 <= normalizer.stats.batches <= 10


def test_inline_mode_runs_in_this_process() -> None:
    normalizer = BatchNormalizer(workers=0)
    outcomes = asyncio.run(run_all(normalizer, records(3)))
    assert all(o.ok and o.value["pid"] == os.getpid() for o in outcomes)


def test_poison_record_fails_alone() -> None:
    normalizer = BatchNormalizer(workers=2, batch_size=8)
    outcomes = asyncio.run(run_all(normalizer, records(20, poison={3, 11})))
    failed = [i for i, o in enumerate(outcomes) if not o.ok]
    assert failed == [3, 11]
    assert outcomes[3].error == "ValueError: poisoned record 3"
    assert "poisoned record 3" in outcomes[3].traceback and "upper" in outcomes[3].traceback
    assert normalizer.stats.errors == 2 and normalizer.stats.restarts == 0


def test_records_and_results_that_cannot_travel_fail_alone() -> None:
    batch = records(12)
    batch[2]["callback"] = lambda: None  # cannot be pickled here
    batch[5]["thing"] = OnlyHere()  # pickled here, cannot be unpickled in the worker
    batch[9]["unpicklable_result"] = True  # its result cannot be pickled in the worker
    normalizer = BatchNormalizer(workers=2, batch_size=6, max_wait=0.2)
    outcomes = asyncio.run(run_all(normalizer, batch))
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [2, 5, 9]
    assert outcomes[2].error.startswith("unpicklable record: ")
    assert outcomes[5].error == "unpicklable batch: RuntimeError: cannot be rebuilt in another process"
    assert outcomes[9].error.startswith("unpicklable result: ")
    assert all(o.value["text"] == f"T{i}" for i, o in enumerate(outcomes) if i not in (2, 5, 9))
    assert normalizer.stats.errors == 3 and normalizer.stats.restarts == 0


def test_a_crashed_worker_is_replaced_and_the_crasher_fails_alone() -> None:
    normalizer = BatchNormalizer(workers=2, batch_size=5, max_pending=2)
    outcomes = asyncio.run(run_all(normalizer, records(30, crash={7})))
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [7]
    assert "crashed its worker" in outcomes[7].error
    assert all(o.value["text"] == f"T{i}" for i, o in enumerate(outcomes) if i != 7)
    assert normalizer.stats.restarts >= 2  # the batch crash, then each lone re-run of the crasher


# No `if __name__ == "__main__":` guard: under spawn every worker re-runs this script, and multiprocessing
# refuses to start a pool while importing the main module, so no worker ever runs anything.
UNGUARDED_SCRIPT = """
import asyncio
from scraper.normalize.pool import BatchNormalizer

async def crawl():
    normalizer = BatchNormalizer(workers=1, batch_size=5, mp_context="spawn")
    outcomes = await asyncio.gather(*(normalizer.submit(FUNC, {"text": str(i)}) for i in range(40)))
    await normalizer.close()
    print("RESULT", sum(o.ok for o in outcomes), normalizer.stats.restarts, outcomes[-1].error)

asyncio.run(crawl())
"""


def test_workers_that_cannot_start_fail_every_record_without_endless_restarts(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(f"FUNC = {FUNC!r}\n" + UNGUARDED_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    result = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    ok, restarts, error = result.split(" ", 3)[1:]
    assert ok == "0"  # every record has an outcome (a failure the pipeline dead-letters), none hangs
    assert "normalisation workers cannot start" in error
    # The first crash, START_ATTEMPTS fresh pools that fail the no-op, and maybe a batch already sent
    # to one of them: a handful, not two per record (~80, each a burst of worker tracebacks).
    assert int(restarts) <= 6, proc.stderr[-2000:]
    assert proc.stderr.count("cannot start") == 1  # one ERROR line, not a flood


def test_backpressure_bounds_records_in_memory() -> None:
    async def scenario() -> int:
        normalizer = BatchNormalizer(workers=1, batch_size=4, max_pending=1, max_wait=10)
        tasks = [asyncio.ensure_future(normalizer.submit(FUNC, r)) for r in records(100)]
        await asyncio.sleep(0.3)
        queued = normalizer.waiting  # the pending batch: never more than one batch
        await asyncio.gather(*tasks)
        await normalizer.close()
        return queued

    assert asyncio.run(scenario()) <= 4


def test_drain_does_not_wait_for_a_batch_to_fill() -> None:
    async def scenario() -> float:
        normalizer = BatchNormalizer(workers=1, batch_size=1000, max_wait=60)
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(normalizer.submit(FUNC, {"n": 0, "text": "x"}))
        await asyncio.sleep(0.1)
        started = loop.time()
        await normalizer.drain()
        assert task.done() and task.result().value["text"] == "X"
        await normalizer.close()
        return loop.time() - started

    assert asyncio.run(scenario()) < 30  # not the 60 s max_wait


def alive(pid: int) -> bool:
    """True for a running process (a zombie, waiting for a reaper that may never come, is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone (ProcessLookupError: while being read)
        return False


def test_a_crash_leaves_other_workers_batches_alone(tmp_path: Path) -> None:
    """Only the dead worker's batches are re-run: a record running in another worker runs once."""
    log = tmp_path / "runs"
    normalizer = BatchNormalizer(workers=2, batch_size=1, max_pending=2)
    slow = {"n": 0, "text": "a", "log_run": str(log), "sleep": 1.0}
    outcomes = asyncio.run(run_all(normalizer, [slow, {"n": 1, "text": "b", "crash": True}]))
    assert [o.ok for o in outcomes] == [True, False]
    assert len(log.read_text().splitlines()) == 1
    assert normalizer.stats.restarts == 2  # the crash, then the crasher's lone re-run


NEVER_CLOSED_SCRIPT = """
import asyncio, pathlib, sys
sys.path.insert(0, {root!r})
from scraper.normalize.pool import BatchNormalizer
async def main():
    normalizer = BatchNormalizer(workers=1, batch_size=1)
    stall = {{"n": 0, "text": "a", "stall": {marker!r}}}
    asyncio.ensure_future(normalizer.submit("tests.normalize_helpers.upper", stall))
    while not pathlib.Path({marker!r}).exists():
        await asyncio.sleep(0.01)
    print(*normalizer.pids, flush=True)
if __name__ == "__main__":
    asyncio.run(main())  # returns with the worker stuck in the record, the normalizer never closed
"""


def test_a_busy_worker_of_a_normalizer_never_closed_does_not_hang_exit(tmp_path: Path) -> None:
    """Workers ignore SIGTERM, and at exit multiprocessing SIGTERMs and joins its children: a busy
    worker left running must be killed, or the process never exits."""
    script = tmp_path / "never_closed.py"
    script.write_text(NEVER_CLOSED_SCRIPT.format(root=str(ROOT), marker=str(tmp_path / "stalled")))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    workers = [int(pid) for pid in proc.stdout.split()]
    assert workers
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)


ORPHAN_SCRIPT = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from scraper.normalize.pool import BatchNormalizer, Outcome, _to_wire, from_wire
from tests.normalize.test_pool import records
async def main():
    normalizer = BatchNormalizer(workers=2)
    await normalizer.submit("tests.normalize_helpers.upper", records(1)[0])
    print(*normalizer.pids, flush=True)
    time.sleep(600)
if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_exit_when_their_crawl_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert workers and all(alive(pid) for pid in workers)
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30)


@pytest.mark.parametrize("result", [
    {"a": 1, "b": "x", "d": Decimal("1.50")},  # unchanged
    {"a": 1.0, "b": "x", "d": Decimal("1.50")},  # equal but another type: must travel
    {"a": 1, "b": "y", "d": Decimal("1.5"), "new": [1]},  # changed and added
    {"b": "x"},  # removed
    {},
])
def test_wire_round_trip_rebuilds_the_exact_result(result: dict) -> None:
    record = {"a": 1, "b": "x", "d": Decimal("1.50")}
    rebuilt = from_wire(record, _to_wire(record, Outcome(value=result))).value
    assert rebuilt == result
    assert [type(v) for v in rebuilt.values()] == [type(v) for v in result.values()]
    assert [str(v) for v in rebuilt.values()] == [str(v) for v in result.values()]


def test_wire_sends_back_only_what_changed() -> None:
    record = {"text": "long " * 100, "n": 1}
    ok, changed, removed = _to_wire(record, Outcome(value={**record, "n": 2}))
    assert ok and changed == {"n": 2} and removed == ()
    failed = from_wire(record, _to_wire(record, Outcome(error="ValueError: x", traceback="tb")))
    assert (failed.ok, failed.error, failed.traceback) == (False, "ValueError: x", "tb")


def test_a_batch_mixing_functions_gets_each_record_its_own_result() -> None:
    async def main() -> list:
        normalizer = BatchNormalizer(workers=2, batch_size=10, max_wait=0.2)
        try:
            return await asyncio.gather(*(
                normalizer.submit(FUNC if r["n"] % 2 else "tests.normalize_helpers.with_length", r)
                for r in records(10)))
        finally:
            await normalizer.close()

    outcomes = asyncio.run(main())
    for i, outcome in enumerate(outcomes):
        expected = ({"text": f"T{i}"} if i % 2 else {"n": i, "text": f"t{i}", "length": len(f"t{i}")})
        assert {k: v for k, v in outcome.value.items() if k != "pid"} == expected
