from __future__ import annotations

import random
from collections import Counter

import pytest

from scraper.backoff import BackoffPolicy
from scraper.proxies.pool import Choice, ProxyPool, ProxyState

A = "http://a.example:8000"
B = "http://b.example:8000"
C = "http://c.example:8000"
#: Deterministic cool-downs: 10 s, 20 s, 40 s, ... (capped at 600 s).
NO_JITTER = BackoffPolicy(base=10.0, cap=600.0, jitter="none")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pool(urls: list[str], clock: FakeClock | None = None, **kwargs: object) -> ProxyPool:
    return ProxyPool(urls, clock=clock or FakeClock(), rng=random.Random(42), **kwargs)  # type: ignore[arg-type]


def take(pool: ProxyPool, session: str | None = None) -> str:
    choice = pool.choose(session)
    assert choice.proxy is not None, choice
    return choice.proxy.url


def load(pool: ProxyPool, times: int) -> Counter[str]:
    """Choose ``times`` without releasing: how many concurrent requests each proxy ends up carrying."""
    return Counter(take(pool) for _ in range(times))


def reanimate(pool: ProxyPool, clock: FakeClock, url: str) -> None:
    clock.now = pool.proxies[url].cooling_until
    pool.counts()
    assert pool.proxies[url].state is ProxyState.PROBATION


# -- selection ------------------------------------------------------------------------------------


def test_first_choices_over_fresh_proxies_are_all_distinct() -> None:
    urls = [f"http://p{i}.example:8000" for i in range(6)]
    pool = make_pool(urls, max_per_proxy=8)
    assert sorted(take(pool) for _ in urls) == sorted(urls)


def test_released_proxies_rotate_least_recently_used_first() -> None:
    clock = FakeClock()
    pool = make_pool([A, B, C], clock)
    order = []
    for _ in range(6):
        url = take(pool)
        pool.release(url)
        order.append(url)
        clock.now += 1
    assert order == [A, B, C, A, B, C]


def test_fast_proxy_carries_proportionally_more_concurrent_requests() -> None:
    fast, slow = A, B
    pool = make_pool([slow, fast], max_per_proxy=100)
    pool.succeeded(fast, latency=0.1)
    pool.succeeded(slow, latency=1.0)
    counts = load(pool, 55)
    # 10x faster -> about 10x the concurrent requests (score = speed / (1 + in_flight)).
    assert counts[slow] >= 3
    assert 8 <= counts[fast] / counts[slow] <= 12


def test_unhealthy_proxy_gets_fewer_requests_but_not_none() -> None:
    healthy, sick = A, B
    pool = make_pool([sick, healthy], max_per_proxy=100)
    for _ in range(5):
        pool.failed(sick)
    assert pool.proxies[sick].state is ProxyState.GOOD  # soft failures do not cool a proxy down
    counts = load(pool, 40)
    # health 0.8**5 ~= 0.33 -> about a third of the healthy proxy's concurrent requests
    assert counts[sick] >= 1
    assert 2.5 <= counts[healthy] / counts[sick] <= 3.6


def test_proxy_that_always_fails_keeps_a_trickle_of_traffic() -> None:
    """The health floor lets a proxy prove itself again instead of starving forever."""
    pool = make_pool([A, B], max_per_proxy=100)
    for _ in range(50):
        pool.failed(B)
    counts = load(pool, 60)
    assert 1 <= counts[B] < counts[A]


# -- concurrency cap -------------------------------------------------------------------------------


def test_per_proxy_cap_then_release_frees_a_place() -> None:
    pool = make_pool([A, B], max_per_proxy=2)
    assert sorted(take(pool) for _ in range(4)) == [A, A, B, B]
    assert pool.choose() == Choice(proxy=None, wait=0.0, all_cooling=False)
    assert pool.release(B) is pool.proxies[B]
    assert take(pool) == B
    assert pool.choose().proxy is None


def test_max_per_proxy_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProxyPool([A], max_per_proxy=0)


# -- cool-down and probation -----------------------------------------------------------------------


def test_banned_proxy_cools_down_and_is_never_chosen_while_cooling() -> None:
    clock = FakeClock()
    pool = make_pool([A, B], clock, cooldown=NO_JITTER)
    seconds = pool.banned(A)
    assert seconds == 10.0
    assert pool.proxies[A].state is ProxyState.COOLING
    assert pool.proxies[A].cooling_until == 1010.0
    for _ in range(20):
        url = take(pool)
        pool.release(url)
        assert url == B
        clock.now += 0.45  # up to 1009.0, still before the cool-down ends
    assert pool.counts()[ProxyState.COOLING] == 1
    assert pool.reanimated == 0


@pytest.mark.parametrize("seed", range(30))
def test_cooldown_is_jittered_within_min_cooldown_and_cap(seed: int) -> None:
    clock = FakeClock()
    policy = BackoffPolicy(base=10.0, cap=60.0, jitter="full")
    pool = ProxyPool([A], cooldown=policy, min_cooldown=2.0, clock=clock, rng=random.Random(seed))
    for bans in range(1, 9):  # repeated bans while cooling escalate up to the cap
        seconds = pool.banned(A)
        assert 2.0 <= seconds <= min(60.0, 10.0 * 2 ** (bans - 1))
        assert pool.proxies[A].cooling_until == pytest.approx(clock.now + seconds)


def test_min_cooldown_is_a_floor_under_the_jitter() -> None:
    policy = BackoffPolicy(base=10.0, cap=600.0, jitter="full")
    first_bans = [ProxyPool([A], cooldown=policy, min_cooldown=5.0, clock=FakeClock(),
                            rng=random.Random(seed)).banned(A) for seed in range(40)]
    assert min(first_bans) == 5.0  # uniform(0, 10) fell under 5 for some seed and was raised
    assert max(first_bans) > 5.0  # and the jitter still spreads the rest


def test_cooled_proxy_comes_back_on_probation_one_request_at_a_time() -> None:
    clock = FakeClock()
    pool = make_pool([A], clock, cooldown=NO_JITTER, max_per_proxy=8)
    pool.banned(A)
    clock.now = 1009.99
    assert pool.choose().proxy is None
    assert pool.reanimated == 0
    clock.now = 1010.0
    assert pool.counts()[ProxyState.PROBATION] == 1
    assert pool.reanimated == 1
    assert take(pool) == A
    assert pool.choose() == Choice(proxy=None, wait=0.0, all_cooling=False)  # cap 1, not 8
    pool.release(A)
    assert take(pool) == A
    pool.counts()
    assert pool.reanimated == 1  # counted once per return from a cool-down


def test_success_on_probation_makes_the_proxy_good_and_resets_bans() -> None:
    clock = FakeClock()
    pool = make_pool([A], clock, cooldown=NO_JITTER, max_per_proxy=3)
    pool.banned(A)
    reanimate(pool, clock, A)
    pool.banned(A)  # a second ban in a row: 20 s
    reanimate(pool, clock, A)
    take(pool)
    pool.release(A)
    pool.succeeded(A, latency=0.2)
    proxy = pool.proxies[A]
    assert proxy.state is ProxyState.GOOD
    assert proxy.bans == 0
    assert load(pool, 3) == {A: 3}  # the full cap again
    assert pool.banned(A) == 10.0  # the backoff starts over


@pytest.mark.parametrize("outcome", ["failed", "banned"])
def test_failure_on_probation_cools_down_again_for_longer(outcome: str) -> None:
    clock = FakeClock()
    pool = make_pool([A], clock, cooldown=NO_JITTER)
    assert pool.banned(A) == 10.0
    for seconds in (20.0, 40.0, 80.0):  # the backoff ceiling doubles with each ban in a row
        reanimate(pool, clock, A)
        assert take(pool) == A
        pool.release(A)
        getattr(pool, outcome)(A)
        proxy = pool.proxies[A]
        assert proxy.state is ProxyState.COOLING
        assert proxy.cooling_until - clock.now == seconds
    assert pool.proxies[A].bans == 4
    assert pool.reanimated == 3


def test_soft_failure_outside_probation_does_not_cool_down() -> None:
    pool = make_pool([A], cooldown=NO_JITTER)
    pool.failed(A)
    proxy = pool.proxies[A]
    assert (proxy.state, proxy.bans, proxy.failures) == (ProxyState.GOOD, 0, 1)
    assert proxy.health < 1.0


def test_all_cooling_reports_the_wait_until_the_soonest_returns() -> None:
    clock = FakeClock()
    pool = make_pool([A, B], clock, cooldown=NO_JITTER)
    pool.banned(A)
    pool.banned(A)  # second ban in a row: A cools until 1020
    clock.now = 1002.0
    pool.banned(B)  # B cools until 1012
    assert pool.choose() == Choice(proxy=None, wait=10.0, all_cooling=True)
    clock.now = 1011.5
    assert pool.choose() == Choice(proxy=None, wait=pytest.approx(0.5), all_cooling=True)
    clock.now = 1012.0
    assert take(pool) == B


def test_empty_pool_has_nothing_to_wait_for() -> None:
    assert make_pool([]).choose() == Choice(proxy=None, wait=0.0, all_cooling=False)


# -- sticky sessions -------------------------------------------------------------------------------


def test_sticky_session_keeps_its_proxy() -> None:
    clock = FakeClock()
    pool = make_pool([A, B, C], clock)
    first = take(pool, "s1")
    for _ in range(5):
        pool.release(first)
        clock.now += 1
        assert take(pool, "s1") == first  # least-recently-used rotation would have moved on
    assert take(pool, "s2") != first


def test_sticky_session_waits_for_its_own_proxy_at_the_cap() -> None:
    pool = make_pool([A, B], max_per_proxy=1)
    assert take(pool, "s1") == A
    assert pool.choose("s1") == Choice(proxy=None, wait=0.0, all_cooling=False)
    assert take(pool) == B  # a request without a session still gets the free one


def test_sticky_session_moves_after_a_ban_and_stays_moved() -> None:
    clock = FakeClock()
    pool = make_pool([A, B, C], clock, cooldown=NO_JITTER)
    first = take(pool, "s1")
    pool.release(first)
    pool.banned(first)
    second = take(pool, "s1")
    assert second != first
    pool.release(second)
    clock.now += 60  # the banned proxy is back (on probation) and would win the rotation
    assert pool.counts()[ProxyState.PROBATION] == 1
    for _ in range(5):
        assert take(pool, "s1") == second
        pool.release(second)
        clock.now += 1


# -- the list --------------------------------------------------------------------------------------


def test_update_keeps_health_drops_removed_proxies_and_their_sessions() -> None:
    clock = FakeClock()
    secret_b = "http://bob:pw-bbb@b.example:8000"
    secret_d = "http://dan:pw-ddd@d.example:8000"
    pool = make_pool([A, secret_b, C], clock)
    assert take(pool, "on-a") == A
    assert take(pool, "on-b") == secret_b
    pool.release(A)
    pool.release(secret_b)
    pool.failed(A)
    pool.succeeded(A, latency=0.3)
    kept = pool.proxies[A]
    health, latency = kept.health, kept.latency

    added, removed = pool.update([A, C, secret_d, C])

    assert added == ["http://dan:***@d.example:8000"]
    assert removed == ["http://bob:***@b.example:8000"]
    assert list(pool.proxies) == [A, C, secret_d]
    assert pool.proxies[A] is kept
    assert (kept.health, kept.latency, kept.failures, kept.successes) == (health, latency, 1, 1)
    assert pool.sessions == {"on-a": A}
    assert pool.release(secret_b) is None
    assert take(pool, "on-b") != secret_b
    assert take(pool, "on-a") == A


def test_update_with_the_same_list_changes_nothing() -> None:
    pool = make_pool([A, B])
    pool.failed(B)
    assert pool.update([B, A]) == ([], [])
    assert pool.proxies[B].failures == 1


def test_proxy_name_never_contains_the_password() -> None:
    url = "http://alice:s3cr3t-pw@proxy.example:3128"
    pool = make_pool([url])
    choice = pool.choose()
    assert choice.proxy is not None
    assert choice.proxy.url == url  # the middleware needs the credentials
    assert choice.proxy.name == "http://alice:***@proxy.example:3128"
    assert "s3cr3t-pw" not in choice.proxy.name


def test_proxies_differing_only_in_password_get_distinct_names() -> None:
    pool = ProxyPool(["http://u:one@h:1", "http://u:two@h:1"], rng=random.Random(1))
    names = [proxy.name for proxy in pool.proxies.values()]
    assert names == ["http://u:***@h:1", "http://u:***@h:1#2"]
    assert pool.by_name == {"http://u:***@h:1": "http://u:one@h:1", "http://u:***@h:1#2": "http://u:two@h:1"}
