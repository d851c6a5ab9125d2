"""Requests overlap up to ``max_concurrency`` in both clients, never more; 429s lower the limit."""

from __future__ import annotations

import asyncio
import itertools
import threading

import httpx
import pytest

from tests._core_fakes import (
    FakeService,
    MakeAsyncClient,
    MakeClient,
    Seen,
    error_response,
    permits_of,
    text_vector,
)
from tongyi_vision.engine.permits import PermitState

WAIT_SECONDS = 10  # only reached if the client fails to overlap requests: the test then fails


class InFlight:
    """Counts requests inside the handler at the same moment."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("max_concurrency", [2, 4, 8])
def test_sync_client_overlaps_requests_up_to_max_concurrency(
    make_client: MakeClient, max_concurrency: int
) -> None:
    counter = InFlight()
    # every wave of requests waits until max_concurrency of them are in the handler together;
    # a client that sent one request at a time would break the barrier and fail the test
    barrier = threading.Barrier(max_concurrency, timeout=WAIT_SECONDS)
    service = FakeService()

    def handler(request: httpx.Request) -> httpx.Response:
        counter.enter()
        try:
            barrier.wait()
            return service(request)
        finally:
            counter.leave()

    client = make_client(handler, max_concurrency=max_concurrency, max_parts_per_request=1)
    texts = [f"t{i}" for i in range(max_concurrency * 5)]
    result = client.embed(texts)
    assert result.vectors == [text_vector(t) for t in texts]
    # reached, and never exceeded: a request beyond the limit would raise the peak
    assert counter.peak == max_concurrency
    assert len(service.seen) == len(texts)


async def test_async_client_overlaps_requests_up_to_max_concurrency(
    make_async_client: MakeAsyncClient,
) -> None:
    max_concurrency = 5
    counter = InFlight()
    full = asyncio.Event()
    service = FakeService()

    async def handler(request: httpx.Request) -> httpx.Response:
        counter.enter()
        try:
            if counter.now >= max_concurrency:
                full.set()
            await asyncio.wait_for(full.wait(), WAIT_SECONDS)
            await asyncio.sleep(0)  # let the others run before answering
            return service(request)
        finally:
            counter.leave()

    client = make_async_client(handler, max_concurrency=max_concurrency, max_parts_per_request=2)
    texts = [f"t{i}" for i in range(40)]
    result = await client.embed(texts)
    assert result.vectors == [text_vector(t) for t in texts]
    assert counter.peak == max_concurrency
    assert len(service.seen) == 20


def test_one_request_needs_no_threads(make_client: MakeClient, service: FakeService) -> None:
    threads = []

    def handler(request: httpx.Request) -> httpx.Response:
        threads.append(threading.current_thread())
        return service(request)

    client = make_client(handler)
    client.embed(["a"])
    assert threads == [threading.main_thread()]


def _attempt(state: PermitState, verdict: str, epoch: int | None = None) -> None:
    """One request through the limit: take a permit, give it back with ``verdict``."""
    taken = state.take(False)
    state.give_back(taken if epoch is None else epoch, verdict)  # type: ignore[arg-type]


def test_adaptive_limit_halves_once_per_burst_and_recovers() -> None:
    limit = PermitState(8)
    epoch = limit.epoch
    _attempt(limit, "throttled", epoch)
    assert limit.limit == 4
    # more 429s for requests sent before the first was seen do not lower it again
    _attempt(limit, "throttled", epoch)
    _attempt(limit, "throttled", epoch)
    assert limit.limit == 4
    _attempt(limit, "throttled")
    assert limit.limit == 2
    for _ in range(2):
        _attempt(limit, "succeeded")
    assert limit.limit == 3
    for _ in range(3 + 4 + 5 + 6 + 7):
        _attempt(limit, "succeeded")
    assert limit.limit == 8
    _attempt(limit, "succeeded")
    assert limit.limit == 8  # never above the maximum
    assert limit.in_flight == 0


def test_adaptive_limit_never_drops_below_one() -> None:
    limit = PermitState(2)
    for _ in range(5):
        _attempt(limit, "throttled")
    assert limit.limit == 1


def test_a_429_lowers_the_clients_concurrency_and_successes_raise_it(
    make_client: MakeClient,
) -> None:
    counter = InFlight()
    peaks_after_throttle: list[int] = []
    throttled = threading.Event()

    def fail(seen: Seen) -> httpx.Response | None:
        if seen.number == 1:
            throttled.set()
            return error_response(429, headers={"retry-after": "0"})
        return None

    service = FakeService(fail=fail)

    def handler(request: httpx.Request) -> httpx.Response:
        counter.enter()
        try:
            if throttled.is_set():
                peaks_after_throttle.append(counter.now)
            return service(request)
        finally:
            counter.leave()

    client = make_client(handler, max_concurrency=4, max_parts_per_request=1)
    client.embed(["first"])
    assert permits_of(client).limit == 2
    result = client.embed([f"t{i}" for i in range(40)])
    assert len(result.vectors) == 40
    assert max(peaks_after_throttle) <= 4
    assert permits_of(client).limit == 4


def test_concurrent_calls_on_one_sync_client_share_max_concurrency(make_client: MakeClient) -> None:
    counter = InFlight()
    barrier = threading.Barrier(4, timeout=WAIT_SECONDS)
    service = FakeService()

    def handler(request: httpx.Request) -> httpx.Response:
        counter.enter()
        try:
            barrier.wait()
            return service(request)
        finally:
            counter.leave()

    client = make_client(handler, max_concurrency=4, max_parts_per_request=1)
    results: dict[str, list[list[float]]] = {}

    def call(name: str) -> None:
        texts = [f"{name}{i}" for i in range(8)]
        results[name] = client.embed(texts).vectors

    threads = [threading.Thread(target=call, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert results["a"] == [text_vector(f"a{i}") for i in range(8)]
    assert results["b"] == [text_vector(f"b{i}") for i in range(8)]
    # two calls of eight requests each, but never more than four in flight between them
    assert counter.peak == 4
    assert permits_of(client).in_flight == 0
    # both calls' usage reached the client's total
    assert client.usage.requests == 16
    assert client.usage.prompt_tokens == 160


async def test_concurrent_calls_on_one_async_client_share_max_concurrency(
    make_async_client: MakeAsyncClient,
) -> None:
    counter = InFlight()
    full = asyncio.Event()
    service = FakeService()

    async def handler(request: httpx.Request) -> httpx.Response:
        counter.enter()
        try:
            if counter.now >= 3:
                full.set()
            await asyncio.wait_for(full.wait(), WAIT_SECONDS)
            await asyncio.sleep(0)
            return service(request)
        finally:
            counter.leave()

    client = make_async_client(handler, max_concurrency=3, max_parts_per_request=1)
    first, second = await asyncio.gather(
        client.embed([f"a{i}" for i in range(6)]), client.embed([f"b{i}" for i in range(6)])
    )
    assert first.vectors == [text_vector(f"a{i}") for i in range(6)]
    assert second.vectors == [text_vector(f"b{i}") for i in range(6)]
    assert counter.peak == 3
    assert permits_of(client).in_flight == 0


class HandlerBug(Exception):
    """Stands for a bug below the client: it must surface as it is, not hang the call."""


def test_an_unexpected_exception_in_a_worker_surfaces_and_frees_the_permits(
    make_client: MakeClient,
) -> None:
    service = FakeService()
    arrivals = itertools.count(1)  # next() is atomic: exactly one request is the third

    def handler(request: httpx.Request) -> httpx.Response:
        if next(arrivals) == 3:
            raise HandlerBug("boom")
        return service(request)

    client = make_client(handler, max_concurrency=4, max_parts_per_request=1)
    with pytest.raises(HandlerBug):
        client.embed([f"t{i}" for i in range(20)])
    assert permits_of(client).in_flight == 0
    # the client still works afterwards
    assert client.embed(["after"]).vectors == [text_vector("after")]


async def test_an_unexpected_exception_in_an_async_worker_surfaces(
    make_async_client: MakeAsyncClient,
) -> None:
    service = FakeService()

    async def handler(request: httpx.Request) -> httpx.Response:
        response = service(request)
        if len(service.seen) == 3:
            raise HandlerBug("boom")
        await asyncio.sleep(0)
        return response

    client = make_async_client(handler, max_concurrency=4, max_parts_per_request=1)
    with pytest.raises(HandlerBug):
        await client.embed([f"t{i}" for i in range(20)])
    assert permits_of(client).in_flight == 0
    assert (await client.embed(["after"])).vectors == [text_vector("after")]


async def test_cancelling_an_async_call_frees_its_permits(
    make_async_client: MakeAsyncClient,
) -> None:
    entered = asyncio.Event()
    never = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        await never.wait()
        raise AssertionError("unreachable")

    client = make_async_client(handler, max_concurrency=3, max_parts_per_request=1)
    task = asyncio.ensure_future(client.embed(["a", "b", "c", "d"]))
    await entered.wait()
    assert permits_of(client).in_flight > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert permits_of(client).in_flight == 0


def test_a_request_back_from_a_backoff_goes_before_new_ones() -> None:
    state = PermitState(1)
    epoch = state.take(False)
    state.queue(True)  # a request whose backoff is over waits for a permit
    state.give_back(epoch, "other")
    assert state.ready(True) and not state.ready(False)
    state.take(True)
    assert (state.returning, state.in_flight) == (0, 1)
