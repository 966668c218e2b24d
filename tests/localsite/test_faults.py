from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from localsite.faults import FaultConfig, FaultPlan, TokenBucket, retry_after_value


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() == pytest.approx(0.1)
    clock.now += 0.1
    assert bucket.take() == 0.0
    clock.now += 10  # refills to the burst, not beyond
    assert sum(bucket.take() == 0.0 for _ in range(10)) == 5


def test_fault_plan_is_deterministic_and_transient() -> None:
    config = FaultConfig(fault_rate=0.3, fault_kinds=("503", "drop"), fault_times=2, seed=9)
    plan, again = FaultPlan(config), FaultPlan(config)
    paths = [f"catalogue/b_{i}/index.html" for i in range(1000)]
    first = [plan.fault_for(p) for p in paths]
    assert first == [again.fault_for(p) for p in paths]
    faulty = [p for p, f in zip(paths, first, strict=True) if f]
    assert 0.25 < len(faulty) / len(paths) < 0.35
    assert {f for f in first if f} == {"503", "drop"}
    assert all(plan.fault_for(p) is not None for p in faulty)  # second attempt still fails
    assert all(plan.fault_for(p) is None for p in faulty)  # third succeeds
    assert plan.fault_for("robots.txt") is None


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultConfig(fault_kinds=("418",))
    with pytest.raises(ValueError, match="unknown knobs"):
        FaultConfig().updated({"latency": 3})
    assert FaultConfig().updated({"rate_limit": 5}).rate_limit == 5


def test_retry_after_forms() -> None:
    assert retry_after_value(0.2, "seconds") == "1"
    assert retry_after_value(2.5, "seconds") == "3"
    assert retry_after_value(1, "none") is None
    date = retry_after_value(3, "date", now=1_000_000.5)
    assert parsedate_to_datetime(date).timestamp() == 1_000_004
