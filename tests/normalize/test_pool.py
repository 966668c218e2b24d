from __future__ import annotations

import asyncio
import os

import pytest

from scraper.normalize.pool import BatchNormalizer

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


def test_worker_crash_restarts_pool_and_isolates_the_crasher() -> None:
    normalizer = BatchNormalizer(workers=2, batch_size=5, max_pending=2)
    outcomes = asyncio.run(run_all(normalizer, records(30, crash={7})))
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [7]
    assert "crashed its worker" in outcomes[7].error
    assert all(o.value["text"] == f"T{i}" for i, o in enumerate(outcomes) if i != 7)
    assert normalizer.stats.restarts >= 2  # the batch crash, then each lone re-run of the crasher


def test_backpressure_bounds_records_in_memory() -> None:
    async def scenario() -> int:
        normalizer = BatchNormalizer(workers=1, batch_size=4, max_pending=1, max_wait=10)
        tasks = [asyncio.ensure_future(normalizer.submit(FUNC, r)) for r in records(100)]
        await asyncio.sleep(0.3)
        queued = normalizer._queue.qsize()  # the pending batch: never more than one batch
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
