"""A rate limit the caller knows: the bucket's spacing, token charging and correction, one
limiter shared by clients, threads and event loops, the client-wide cool-down after a 429,
and the time budget for 429s against ``max_retries``."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from tests._core_fakes import FakeClock, FakeService, error_response, text_vector
from tongyi_vision import AsyncClient, Client, ConfigurationError, RateLimit, RateLimitError
from tongyi_vision.engine.permits import PermitState
from tongyi_vision.engine.planner import Limits, Plan, dedupe, pack
from tongyi_vision.engine.ratelimit import (
    MARGIN_EASE,
    MARGIN_MOST,
    MARGIN_STEP,
    TOKEN_SLACK,
    Slot,
)
from tongyi_vision.engine.scheduler import Call, RequestSettings, RetryPolicy, Send, Sleep
from tongyi_vision.media.prepared import prepare_text


def limiter(**options: Any) -> tuple[RateLimit, FakeClock]:
    clock = FakeClock()
    limit = RateLimit(**options)
    limit._clock = clock
    return limit, clock


def gaps(slots: Sequence[Slot]) -> list[float]:
    times = sorted(s.time for s in slots)
    return [b - a for a, b in itertools.pairwise(times)]


# --- the bucket ------------------------------------------------------------------------------


def test_requests_are_spread_evenly_a_little_under_the_rate() -> None:
    limit, clock = limiter(requests_per_minute=120)
    slots = [limit.reserve() for _ in range(5)]
    interval = 60 / (120 * (1 - limit.headroom))
    assert slots[0].time == clock.now  # a quiet limiter lets the first go at once
    assert gaps(slots) == pytest.approx([interval] * 4)
    assert limit.remaining(slots[4]) == pytest.approx(4 * interval)
    clock.now += 2 * interval
    assert limit.remaining(slots[1]) == 0


def test_a_burst_never_breaks_the_per_second_share() -> None:
    limit, _ = limiter(requests_per_minute=600, burst=3)
    slots = [limit.reserve() for _ in range(40)]
    times = [s.time for s in slots]
    assert times[:3] == pytest.approx([times[0]] * 3)  # the burst goes back to back
    for start in times:  # but no second holds more than a 60th of the minute
        assert sum(1 for t in times if start <= t < start + 1.0) <= 10


def test_tokens_are_charged_before_sending_and_corrected_after() -> None:
    limit, clock = limiter(tokens_per_minute=6000)  # 100 tokens a second
    rate = 100 * (1 - limit.headroom)
    first = limit.reserve(20)
    second = limit.reserve(20)
    assert second.time - first.time == pytest.approx(20 / rate - TOKEN_SLACK)
    limit.settle(second, 40)  # the answer billed twice the estimate
    third = limit.reserve(10)
    assert third.time - second.time == pytest.approx(40 / rate - TOKEN_SLACK)
    limit.settle(third, 0)  # refused: nothing billed, the next goes sooner than 10 tokens say
    fourth = limit.reserve(10)
    assert fourth.time == pytest.approx(third.time)
    assert clock.now == 100.0


def test_the_tokens_of_a_second_stay_under_a_60th_of_the_minute() -> None:
    limit, _ = limiter(tokens_per_minute=60_000)  # 1,000 a second
    slots = [limit.reserve(300) for _ in range(30)]
    for start in (s.time for s in slots):
        assert sum(s.tokens for s in slots if start <= s.time < start + 1.0) <= 1000


def test_a_request_larger_than_a_second_of_tokens_is_slowed_not_refused() -> None:
    limit, _ = limiter(tokens_per_minute=600)  # 10 a second
    small = limit.reserve(5)
    big = limit.reserve(50)
    after = limit.reserve(5)
    assert small.time < big.time < after.time


def test_a_cool_down_moves_every_slot_not_yet_due_and_widens_the_margin() -> None:
    limit, clock = limiter(requests_per_minute=600)
    slots = [limit.reserve() for _ in range(4)]
    first = slots[0].time
    limit.cool_down(5.0)
    assert slots[0].time == first  # the one due now has gone already
    assert min(s.time for s in slots[1:]) == pytest.approx(clock.now + 5.0)
    # the others come back one after another, spaced as the wider margin spaces them
    assert limit.margin == pytest.approx(limit.headroom + MARGIN_STEP)
    assert gaps(slots[1:]) == pytest.approx([60 / (600 * (1 - limit.margin))] * 2)
    assert limit.reserve().time > slots[-1].time
    limit.cool_down(1.0)  # a shorter one moves nothing
    assert min(s.time for s in slots[1:]) == pytest.approx(clock.now + 5.0)
    assert limit.margin == pytest.approx(limit.headroom + MARGIN_STEP)  # once a second


def test_the_margin_eases_back_to_the_headroom_and_never_passes_the_limit() -> None:
    limit, clock = limiter(requests_per_minute=600)
    for _ in range(20):  # a 429 every second: the margin grows to its most, no further
        clock.now += 1.0
        limit.cool_down(0.0)
    assert limit.margin == pytest.approx(MARGIN_MOST)
    clock.now += (MARGIN_MOST - limit.headroom) / MARGIN_EASE / 2
    assert limit.margin == pytest.approx((MARGIN_MOST + limit.headroom) / 2)
    clock.now += 3600
    assert limit.margin == pytest.approx(limit.headroom)  # never less than it was given
    # however it moved, no second ever held more than the limit allows
    slots = [limit.reserve() for _ in range(50)]
    times = [s.time for s in slots]
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 10


def test_a_fractional_rate_a_second_is_a_whole_number_of_requests_per_span() -> None:
    # 1,000 a minute is 16.7 a second: 17 in 1.02 s (as the service counts it), not 16 in 1 s
    limit, _ = limiter(requests_per_minute=1000, headroom=0.0)
    slots = [limit.reserve() for _ in range(60)]
    assert slots[-1].time - slots[0].time == pytest.approx(59 * 60 / 1000)


def test_token_spacing_may_catch_up_within_the_windows() -> None:
    limit, _ = limiter(tokens_per_minute=60_000, headroom=0.0)  # 1,000 a second
    big = limit.reserve(900)
    small = limit.reserve(50)
    # spacing alone would hold the small one 0.9 s; the slack lets it go a little sooner,
    # and the window still keeps the second under 1,000 tokens
    assert small.time - big.time == pytest.approx(0.9 - TOKEN_SLACK)
    late = limit.reserve(100)
    assert late.time >= big.time + 1.0


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"requests_per_minute": 0},
        {"requests_per_minute": -5},
        {"tokens_per_minute": float("nan")},
        {"requests_per_minute": True},
        {"requests_per_minute": 60, "burst": 0},
        {"requests_per_minute": 60, "headroom": 0.9},
    ],
)
def test_bad_limits_are_refused_with_what_to_give(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="RateLimit"):
        RateLimit(**options)


# --- sharing -------------------------------------------------------------------------------


def test_threads_sharing_a_limiter_get_distinct_evenly_spaced_slots() -> None:
    limit = RateLimit(requests_per_minute=6000)  # a slot every ~10 ms: short real waits
    taken: list[Slot] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            slot = limit.acquire()
            with lock:
                taken.append(slot)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 20
    assert min(gaps(taken)) == pytest.approx(limit._interval)


def test_two_event_loops_share_one_limiter() -> None:
    limit = RateLimit(requests_per_minute=6000)
    taken: list[Slot] = []

    def loop() -> None:
        async def main() -> None:
            for _ in range(5):
                taken.append(await limit.aacquire())

        asyncio.run(main())

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 10
    assert min(gaps(taken)) == pytest.approx(limit._interval)


class Recording(RateLimit):
    """A limiter that keeps every slot it handed out."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.slots: list[Slot] = []

    def reserve(self, tokens: int = 0) -> Slot:
        slot = super().reserve(tokens)
        self.slots.append(slot)
        return slot


def test_a_sync_and_an_async_client_share_one_budget() -> None:
    limit = Recording(requests_per_minute=6000, tokens_per_minute=6_000_000)
    service = FakeService()
    texts = [f"text {i}" for i in range(12)]
    options: dict[str, Any] = {"max_parts_per_request": 2, "rate_limit": limit}
    transport = httpx.MockTransport(service)
    sync = Client("k", http_client=httpx.Client(transport=transport), **options)
    aclient = AsyncClient("k", http_client=httpx.AsyncClient(transport=transport), **options)

    async def both() -> tuple[list[list[float]], list[list[float]]]:
        done = asyncio.to_thread(sync.embed_texts, texts[:6])
        first, second = await asyncio.gather(done, aclient.embed_texts(texts[6:]))
        return first.vectors, second.vectors

    first, second = asyncio.run(both())
    assert first + second == [text_vector(t) for t in texts]
    assert len(limit.slots) == len(service.seen) == 6  # one slot per request, both clients
    assert min(gaps(limit.slots)) == pytest.approx(limit._interval)
    # each slot was charged the tokens its answer billed (the fake bills 10 a part)
    assert [s.tokens for s in limit.slots] == [20] * 6


# --- the client cools down after a 429 -------------------------------------------------------


@pytest.mark.parametrize("verdict", ["throttled", "surge", "tokens"])
def test_a_paced_429_pauses_the_whole_client_and_leaves_concurrency_alone(verdict: str) -> None:
    cooled = PermitState(8)
    epoch = cooled.take(False)
    cooled.take(False)
    grant = cooled.admit(10, passed=0)
    assert grant is not None
    backoff = cooled.give_back(epoch, verdict, grant.tokens, seconds=30.0, paced=True)  # type: ignore[arg-type]
    assert backoff.pause is not None and backoff.spread == 0
    assert cooled.limit == 8 and cooled.tokens.limit is None  # a limiter meters the rate
    held = cooled.admit(10, passed=0)  # another request of the client is held back...
    assert held is not None and held.tokens is None and held.wait > 29
    assert cooled.admit(10, passed=backoff.pause) is not None  # ...not the refused one

    plain = PermitState(8)  # nothing meters the rate: concurrency backs off, no pause
    epoch = plain.take(False)
    assert plain.give_back(epoch, "throttled", seconds=30.0).pause is None
    assert plain.limit == 4
    granted = plain.admit(10, passed=0)
    assert granted is not None and granted.tokens is not None


def test_a_429_with_a_rate_limit_cools_the_limiter_down_and_the_call_completes() -> None:
    limit = Recording(requests_per_minute=6000)
    cooled: list[float] = []
    original = limit.cool_down

    def cool_down(seconds: float) -> None:
        cooled.append(seconds)
        original(seconds)

    limit.cool_down = cool_down  # type: ignore[method-assign]
    throttled = error_response(
        429, code="Throttling.RateQuota", headers={"retry-after-ms": "50"}, message="rpm"
    )
    service = FakeService(script={1: lambda seen: throttled})
    http = httpx.Client(transport=httpx.MockTransport(service))
    with Client("k", http_client=http, rate_limit=limit, max_retries=0) as client:
        result = client.embed_texts(["a", "b"])
    assert result.vectors == [text_vector("a"), text_vector("b")]
    assert cooled == [pytest.approx(0.05)]
    assert result.usage.retries == 1  # retried although max_retries=0: a known rate limit
    assert len(limit.slots) == 2  # the retry took a slot of its own
    assert limit.slots[0].tokens == 0  # the refused attempt was billed nothing


# --- the wait budget against max_retries -----------------------------------------------------


def _call(texts: Sequence[str], policy: RetryPolicy) -> Call:
    prepared = [(i, prepare_text(t)) for i, t in enumerate(texts)]
    unique, owners = dedupe(prepared)
    plan = Plan(unique, owners, pack(unique, Limits(1, 8, 1 << 20)))
    settings = RequestSettings("openai", "m", None, 4, lambda text: text)
    return Call(plan, settings=settings, policy=policy)


def _ok(body: bytes) -> httpx.Response:
    texts = json.loads(body)["input"]
    data = [{"index": i, "embedding": [1.0, 2.0, 3.0, 4.0]} for i in range(len(texts))]
    return httpx.Response(200, json={"data": data, "usage": {"total_tokens": 3}})


def _throttled(_: bytes) -> httpx.Response:
    return error_response(429, code="Throttling.RateQuota", headers={"retry-after": "2"})


def _server_error(_: bytes) -> httpx.Response:
    return error_response(500)


def _play(call: Call, replies: Sequence[Any]) -> tuple[str, list[float]]:
    batch = call.take()
    assert batch is not None
    flow = call.run_batch(batch)
    pending, waits = list(replies), list[float]()
    value: Any = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration as done:
            return done.value, waits
        value = None
        if isinstance(effect, Send):
            value = pending.pop(0)(effect.body)
        elif isinstance(effect, Sleep):
            waits.append(effect.seconds)
        else:
            value = effect.build()


def test_429s_wait_within_the_budget_without_using_up_max_retries() -> None:
    policy = RetryPolicy(max_retries=0, max_rate_limit_wait=10.0, rate_limit_known=True)
    call = _call(["a"], policy)
    verdict, waits = _play(call, [_throttled] * 5 + [_ok])
    assert verdict == "succeeded" and waits == [2.0] * 5
    assert call.error is None and call.usage.retries == 5


def test_past_the_budget_429s_count_as_retries_then_the_call_fails() -> None:
    policy = RetryPolicy(max_retries=1, max_rate_limit_wait=5.0, rate_limit_known=True)
    call = _call(["a"], policy)
    verdict, waits = _play(call, [_throttled] * 4)
    # two fit in 5 s, the third is the one retry max_retries allows, the fourth fails
    assert waits == [2.0, 2.0, 2.0]
    assert isinstance(call.error, RateLimitError)
    assert verdict == "other"


def test_max_retries_keeps_its_meaning_for_other_errors() -> None:
    policy = RetryPolicy(max_retries=1, max_rate_limit_wait=300.0, rate_limit_known=True)
    call = _call(["a"], policy)
    _play(call, [_server_error, _server_error])
    assert call.error is not None and call.error.status == 500  # type: ignore[attr-defined]


def test_without_a_rate_limit_429s_are_free_only_while_the_call_goes_on() -> None:
    # Nothing else succeeds: a key refused and nothing else is given up on after max_retries.
    lonely = _call(["a"], RetryPolicy(max_retries=0))
    _play(lonely, [_throttled])
    assert isinstance(lonely.error, RateLimitError)
    # Another request of the call succeeds while this one is out: its 429 waits instead.
    busy = _call(["a", "b"], RetryPolicy(max_retries=0))
    first = busy.take()
    assert first is not None
    flow = busy.run_batch(first)
    load = next(flow)
    send = flow.send(load.build())  # type: ignore[union-attr]
    assert isinstance(send, Send)
    assert _play(busy, [_ok])[0] == "succeeded"  # the other request
    assert isinstance(flow.send(_throttled(send.body)), Sleep)
    assert isinstance(flow.send(None), Send)
    with pytest.raises(StopIteration) as done:
        flow.send(_ok(send.body))
    assert done.value.value == "succeeded" and busy.error is None
