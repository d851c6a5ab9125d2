"""One suite, run against both drivers: worker threads and asyncio tasks.

The drivers only perform what the shared worker asks (take a permit, build, send, wait,
give the permit back); these tests check that both perform it the same way. The service
is a function of the request body, so no HTTP is involved.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from tongyi_vision import BadRequestError
from tongyi_vision.engine.drivers import run_on_tasks, run_on_threads
from tongyi_vision.engine.permits import AsyncPermits, PermitState, ThreadPermits
from tongyi_vision.engine.planner import Limits, Plan, dedupe, pack
from tongyi_vision.engine.scheduler import Call, OnInvalid, RequestSettings, RetryPolicy
from tongyi_vision.media.prepared import prepare_text

HOLD_SECONDS = 2.0  # a request waits at most this long for others to join it


def call_of(texts: Sequence[str], *, on_invalid: OnInvalid = "raise") -> Call:
    """A call of one text per request."""
    unique, owners = dedupe([(i, prepare_text(t)) for i, t in enumerate(texts)])
    plan = Plan(unique, owners, pack(unique, Limits(1, 8, 1 << 20)))
    settings = RequestSettings("openai", "m", None, 2, lambda text: text)
    return Call(plan, settings=settings, policy=RetryPolicy(), on_invalid=on_invalid)


def vector(text: str) -> list[float]:
    return [float(len(text)), 1.0]


class Service:
    """Answers each body; counts requests in flight, and holds each one until ``gather``
    are in flight together (or a short time has passed), so concurrency shows."""

    def __init__(
        self, gather: int = 1, reply: Callable[[str, int], httpx.Response | None] | None = None
    ) -> None:
        self.gather = gather
        self.reply = reply
        self.sent: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def enter(self, body: bytes) -> str:
        (text,) = json.loads(body)["input"]
        with self.lock:
            self.sent.append(text)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return str(text)

    def answer(self, text: str) -> httpx.Response:
        with self.lock:
            self.in_flight -= 1
            attempt = self.sent.count(text)
        if self.reply is not None:
            replied = self.reply(text, attempt)
            if replied is not None:
                return replied
        data = [{"object": "embedding", "index": 0, "embedding": vector(text)}]
        return httpx.Response(200, json={"object": "list", "data": data})


class Driver:
    """Runs a call with one of the two drivers and gives back its permits' state."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.state = PermitState(1)  # the permits of the last run, also when it raised

    def run(
        self,
        call: Call,
        service: Service,
        *,
        max_concurrency: int,
        sleep: Callable[[float], Any] | None = None,
    ) -> PermitState:
        workers = min(max_concurrency, len(call.queue))
        if self.kind == "threads":
            return self._threads(call, service, max_concurrency, workers, sleep)
        return asyncio.run(self._tasks(call, service, max_concurrency, workers, sleep))

    @staticmethod
    def _threads(call: Call, service: Service, most: int, workers: int, sleep: Any) -> PermitState:
        permits = ThreadPermits(most)
        ready = threading.Condition()

        def send(body: bytes) -> httpx.Response:
            text = service.enter(body)
            with ready:
                ready.notify_all()
                ready.wait_for(lambda: service.in_flight >= service.gather, HOLD_SECONDS)
            return service.answer(text)

        run_on_threads(call, permits, send, sleep or (lambda _: None), workers)
        return permits.state

    async def _tasks(
        self, call: Call, service: Service, most: int, workers: int, sleep: Any
    ) -> PermitState:
        permits = AsyncPermits(most)
        self.state = permits.state

        async def send(body: bytes) -> httpx.Response:
            text = service.enter(body)
            for _ in range(int(HOLD_SECONDS / 0.01)):
                if service.in_flight >= service.gather:
                    break
                await asyncio.sleep(0.01)
            return service.answer(text)

        async def no_wait(_: float) -> None:
            await asyncio.sleep(0)

        await run_on_tasks(call, permits, send, sleep or no_wait, workers)
        return permits.state


@pytest.fixture(params=["threads", "tasks"])
def driver(request: pytest.FixtureRequest) -> Driver:
    return Driver(request.param)


def test_requests_run_concurrently_up_to_the_limit_and_never_above(driver: Driver) -> None:
    texts = [f"t{i}" for i in range(9)]
    call = call_of(texts)
    service = Service(gather=3)
    state = driver.run(call, service, max_concurrency=3)
    assert service.peak == 3
    assert call.partial(9).vectors == [vector(t) for t in texts]
    assert state.in_flight == 0


def test_a_429_lowers_the_limit_and_the_request_is_sent_again(driver: Driver) -> None:
    def reply(text: str, attempt: int) -> httpx.Response | None:
        if text == "t0" and attempt == 1:
            return httpx.Response(429, json={"error": {"message": "slow down"}})
        return None

    call = call_of(["t0", "t1", "t2", "t3"])
    waits: list[float] = []
    sleep = _recorder(driver, waits)
    state = driver.run(call, Service(reply=reply), max_concurrency=4, sleep=sleep)
    assert len(waits) == 1
    assert state.limit < 4 and state.in_flight == 0
    assert call.partial(4).vectors == [vector(f"t{i}") for i in range(4)]


def test_a_backoff_gives_its_permit_to_the_next_request(driver: Driver) -> None:
    # The 429 cuts the limit to one permit: the throttled request must give it back while it
    # waits, or "third" could not be sent before it returns.
    def reply(text: str, attempt: int) -> httpx.Response | None:
        if text == "first" and attempt == 1:
            return httpx.Response(429, json={"error": {"message": "slow down"}})
        return None

    service = Service(reply=reply)
    call = call_of(["first", "second", "third"])
    seen_during_wait: list[list[str]] = []

    def look(_: float) -> None:
        seen_during_wait.append(list(service.sent))

    sleep: Any = look
    if driver.kind == "tasks":

        async def sleep(seconds: float) -> None:
            for _ in range(200):
                if "third" in service.sent:
                    break
                await asyncio.sleep(0.01)
            look(seconds)

    else:

        def sleep(seconds: float) -> None:
            for _ in range(200):
                if "third" in service.sent:
                    break
                threading.Event().wait(0.01)
            look(seconds)

    state = driver.run(call, service, max_concurrency=2, sleep=sleep)
    assert len(seen_during_wait) == 1 and "third" in seen_during_wait[0]
    assert sorted(service.sent) == ["first", "first", "second", "third"]
    assert state.in_flight == 0 and call.partial(3).missing == []


def test_a_bug_in_a_worker_surfaces_stops_the_call_and_returns_every_permit(
    driver: Driver,
) -> None:
    def reply(text: str, attempt: int) -> httpx.Response | None:
        if text == "t1":
            raise RuntimeError("the fake broke")
        return None

    call = call_of([f"t{i}" for i in range(6)])
    with pytest.raises(RuntimeError, match="the fake broke"):
        driver.run(call, Service(reply=reply), max_concurrency=2)
    assert call.error is not None and "interrupted" in str(call.error)
    assert driver.state.in_flight == 0
    assert call.take() is None


def test_skipping_through_a_driver_keeps_the_good_parts(driver: Driver) -> None:
    def reply(text: str, attempt: int) -> httpx.Response | None:
        if text == "bad":
            return httpx.Response(400, json={"error": {"message": "refused"}})
        return None

    call = call_of(["good", "bad", "fine"], on_invalid="skip")
    state = driver.run(call, Service(reply=reply), max_concurrency=2)
    partial = call.partial(3)
    assert partial.vectors == [vector("good"), None, vector("fine")]
    assert isinstance(partial.errors[1], BadRequestError)
    assert call.error is None and state.in_flight == 0


def _recorder(driver: Driver, waits: list[float]) -> Callable[[float], Any]:
    if driver.kind == "tasks":

        async def record(seconds: float) -> None:
            waits.append(seconds)

        return record
    return waits.append
