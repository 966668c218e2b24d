"""The Redis frontier's scripts against a real redis-server: leases, reclaim, delays, transfer, Bloom."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from scrapy import Request, Spider
from scrapy.utils.test import get_crawler

from scraper.distributed.dupefilter import LeasingDupeFilter, bloom_size
from scraper.distributed.frontier import Frontier, FrontierKeys, Taken


@pytest.fixture
def frontier(redis_server: str) -> Frontier:
    client = redis.Redis.from_url(redis_server)
    return Frontier(client, FrontierKeys.under(f"test:{uuid.uuid4().hex}"), lease_seconds=1)


def one(frontier: Frontier) -> tuple[Taken | None, int]:
    taken, reclaimed = frontier.take()
    return (taken[0] if taken else None), reclaimed


def test_take_several_at_once_in_priority_order(frontier: Frontier) -> None:
    for n in range(5):
        frontier.push(f"r{n}".encode(), priority=n)
    taken, _ = frontier.take(3)
    assert [t.payload for t in taken] == [b"r4", b"r3", b"r2"] and len({t.lease for t in taken}) == 3
    assert frontier.counts().leased == 3 and frontier.counts().pending == 2


def test_take_leases_the_best_pending_request(frontier: Frontier) -> None:
    frontier.push(b"low", priority=0)
    frontier.push(b"high", priority=5)
    taken, reclaimed = one(frontier)
    assert taken is not None and taken.payload == b"high" and reclaimed == 0
    assert frontier.counts().pending == 1 and frontier.counts().leased == 1
    frontier.ack([taken.lease])
    assert frontier.counts().leased == 0
    assert one(frontier)[0].payload == b"low"
    assert one(frontier) == (None, 0)


def test_an_expired_lease_is_reclaimed_by_the_next_taker(frontier: Frontier) -> None:
    frontier.push(b"job", priority=3)
    first, _ = one(frontier)
    assert first is not None
    time.sleep(1.2)  # the holder died: nobody extended the lease
    again, reclaimed = one(frontier)
    assert reclaimed == 1 and again is not None and again.payload == b"job" and again.lease != first.lease
    frontier.ack([first.lease])  # a late ack of the dead lease does not remove the new one
    assert frontier.counts().leased == 1


def test_extended_leases_are_not_reclaimed(frontier: Frontier) -> None:
    frontier.push(b"job", priority=0)
    taken, _ = one(frontier)
    for _ in range(3):
        time.sleep(0.5)
        assert frontier.extend([taken.lease]) == 1
    assert one(frontier) == (None, 0)


def test_delayed_requests_become_pending_when_due_with_their_priority(frontier: Frontier) -> None:
    frontier.push_delayed(b"later", priority=7, due=time.time() + 0.5)
    frontier.push(b"now", priority=1)
    assert one(frontier)[0].payload == b"now"
    assert one(frontier) == (None, 0) and frontier.counts().delayed == 1
    time.sleep(0.7)
    taken, _ = one(frontier)
    assert taken.payload == b"later"
    frontier.release([taken.lease])  # back with priority 7, ahead of a priority-1 newcomer
    frontier.push(b"other", priority=1)
    assert one(frontier)[0].payload == b"later"


def test_transfer_pushes_the_follow_up_and_acks_atomically(frontier: Frontier) -> None:
    frontier.push(b"original", priority=0)
    taken, _ = one(frontier)
    frontier.transfer([taken.lease], b"retry", priority=0, due=time.time() + 60)
    counts = frontier.counts()
    assert (counts.pending, counts.delayed, counts.leased) == (0, 1, 0)


def test_payloads_with_colons_survive_a_round_trip(frontier: Frontier) -> None:
    payload = b"a:b:\x00:c"
    frontier.push_delayed(payload, priority=-2, due=0)
    taken, _ = one(frontier)
    assert taken.payload == payload


class DemoSpider(Spider):
    name = "demo"


def test_dupefilter_uses_scrapys_fingerprinter_and_bloom_is_atomic(redis_server: str) -> None:
    client = redis.Redis.from_url(redis_server)
    crawler = get_crawler(DemoSpider)
    exact = LeasingDupeFilter(client, f"test:{uuid.uuid4().hex}", crawler.request_fingerprinter)
    bloom = LeasingDupeFilter(client, f"test:{uuid.uuid4().hex}", crawler.request_fingerprinter,
                              bloom=bloom_size(10_000, 0.001))
    for dupefilter in (exact, bloom):
        assert not dupefilter.request_seen(Request("http://a/1?x=1&y=2"))
        assert dupefilter.request_seen(Request("http://a/1?y=2&x=1"))  # same canonical fingerprint
        assert not dupefilter.request_seen(Request("http://a/2"))
    assert exact.request_fingerprint(Request("http://a/")) == crawler.request_fingerprinter.fingerprint(
        Request("http://a/")).hex()
    seen = sum(bloom.request_seen(Request(f"http://b/{n}")) for n in range(2000))
    assert seen <= 10  # false positives stay near the configured 0.1%
    bits, hashes = bloom_size(10_000, 0.001)
    assert client.strlen(bloom.key) <= bits // 8 + 1 and hashes == 10


def test_scheduler_keeps_rotating_proxy_credentials_out_of_redis(redis_server: str) -> None:
    from scraper.distributed.scheduler import LeasingScheduler
    from scraper.meta import ROUTED_VIA

    crawler = get_crawler(DemoSpider, settings_dict={"REDIS_URL": redis_server,
                                                     "REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex}"})
    spider = crawler._create_spider()
    crawler.spider = spider
    scheduler = LeasingScheduler.from_crawler(crawler)

    async def scenario() -> None:  # open() starts its lease/checkpoint loop: needs a running loop
        scheduler.open(spider)
        try:
            retry = Request("http://a/1", dont_filter=True, meta={ROUTED_VIA: "http://u:***@p:1"},
                            headers={"Proxy-Authorization": "Basic c2VjcmV0LXB3"})
            assert scheduler.enqueue_request(retry)
            client = redis.Redis.from_url(redis_server)
            payloads = client.zrange(scheduler.frontier.keys.queue, 0, -1)
            assert payloads and not any(b"c2VjcmV0LXB3" in p for p in payloads)
            taken = scheduler.next_request()
            assert taken is not None and taken.url == "http://a/1"
        finally:
            scheduler._loop.stop()
            scheduler.frontier.clear()

    asyncio.run(scenario())


def test_a_callback_passing_response_meta_on_does_not_hand_its_lease_on(redis_server: str) -> None:
    """Only downloader follow-ups (retries, redirects) take over a lease; a child request made with
    ``meta=response.meta`` must not, or its parent would be acked before its items are durable."""
    from scrapy import signals
    from scrapy.http import Response

    from scraper.distributed.scheduler import LeasingScheduler

    crawler = get_crawler(DemoSpider, settings_dict={"REDIS_URL": redis_server,
                                                     "REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex}"})
    spider = crawler._create_spider()
    crawler.spider = spider
    scheduler = LeasingScheduler.from_crawler(crawler)

    async def scenario() -> None:
        scheduler.open(spider)
        try:
            scheduler.enqueue_request(Request("http://a/parent"))
            parent = scheduler.next_request()
            response = Response(parent.url, request=parent)
            crawler.signals.send_catch_log(signals.response_received, response=response, request=parent,
                                           spider=spider)
            scheduler.enqueue_request(Request("http://a/child", meta=response.meta))
            assert list(scheduler.held.values()) == [parent]  # still held, acked by a checkpoint
            assert scheduler.frontier.counts().leased == 1
        finally:
            scheduler._loop.stop()
            scheduler.frontier.clear()

    asyncio.run(scenario())


@pytest.mark.parametrize("bloom", [False, True])
def test_a_reply_lost_to_a_redis_restart_does_not_drop_a_new_request(redis_server: str, bloom: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis ran the command, the connection died before the reply, the client retried. With a
    separate "seen?" then "push", the retried SADD answers "seen" and the request was lost (found by
    the Redis-restart crawl test under CPU load). Check-and-push is one script now."""
    from redis.connection import Connection
    from redis.exceptions import ConnectionError as RedisConnectionError

    from scraper.distributed.scheduler import LeasingScheduler

    crawler = get_crawler(DemoSpider, settings_dict={"REDIS_URL": redis_server, "REDIS_DUPEFILTER_BLOOM": bloom,
                                                     "REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex}"})
    spider = crawler._create_spider()
    crawler.spider = spider
    scheduler = LeasingScheduler.from_crawler(crawler)
    read_response = Connection.read_response
    lost = []

    def lose_first_reply(self: Connection, *args: object, **kwargs: object) -> object:
        reply = read_response(self, *args, **kwargs)  # the server has run the command
        if not lost:
            lost.append(reply)
            self.disconnect()
            raise RedisConnectionError("connection lost (simulated)")
        return reply

    async def scenario() -> None:
        scheduler.open(spider)
        try:
            scheduler.enqueue_request(Request("http://a/warm-up"))  # scripts loaded: lose the real reply
            monkeypatch.setattr(Connection, "read_response", lose_first_reply)
            scheduler.enqueue_request(Request("http://a/new"))
            monkeypatch.undo()
            assert lost, "the simulated loss did not happen"
            taken = {scheduler.next_request().url for _ in range(2)}
            assert taken == {"http://a/warm-up", "http://a/new"}
            assert not scheduler.enqueue_request(Request("http://a/new"))  # still a duplicate later
        finally:
            scheduler._loop.stop()
            scheduler.frontier.clear()

    asyncio.run(scenario())


def test_journaled_leases_are_parked_until_completed(frontier: Frontier) -> None:
    for n in range(3):
        frontier.push(f"r{n}".encode(), priority=0)
    taken, _ = frontier.take(3)
    leases = [t.lease for t in taken]
    frontier.journal("w:0", b'{"worker": "w"}', leases[:2])
    time.sleep(1.2)  # the holder died after journaling: only the unjournaled lease expires
    again, reclaimed = frontier.take(3)
    assert reclaimed == 1 and [t.payload for t in again] == [taken[2].payload]
    assert frontier.counts().leased == 3  # the parked two still count: nobody idles out on them
    assert frontier.entries() == {"w:0": b'{"worker": "w"}'}
    frontier.complete("w:0", leases[:2])
    assert frontier.entries() == {} and frontier.counts().leased == 1


def test_an_abandoned_entry_gives_its_leases_back(frontier: Frontier) -> None:
    frontier.push(b"job", priority=0)
    taken, _ = frontier.take()
    frontier.journal("w:0", b"{}", [taken[0].lease])
    frontier.abandon("w:0", [taken[0].lease])
    again, reclaimed = frontier.take()  # no waiting: the lease expired at once
    assert reclaimed == 1 and again[0].payload == b"job" and frontier.entries() == {}


def test_only_one_worker_claims_an_entry(frontier: Frontier) -> None:
    frontier.journal("dead:0", b"seen", [])
    assert frontier.claim("dead:0", b"seen", b"mine")
    assert not frontier.claim("dead:0", b"seen", b"theirs")  # it changed since it was read
    assert frontier.entries() == {"dead:0": b"mine"}
