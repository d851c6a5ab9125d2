"""While no rate meters a client, each 429 backs off on the limit it names: requests and
surges on request concurrency, tokens on the tokens in flight and a pause of the whole
client, never on concurrency.

That is what a client does when its learner has nothing to learn a rate from (no request
admitted in the seconds before the 429s). Here the learner is kept out of the way so that
these tests pin that back-off whatever the threads' order; how a learned pace takes over
is tested in ``test_learned_limit.py``."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests._core_fakes import KEY, FakeService, Seen, error_response, permits_of, text_vector
from tongyi_vision import AsyncClient, Client, RateLimitError
from tongyi_vision.engine import permits as permits_module
from tongyi_vision.engine.permits import SURGE_SPREAD, PermitState
from tongyi_vision.engine.ratelimit import RateLearner

HOLD_SECONDS = 10  # only reached if the client fails to overlap requests: the test then fails
REAL_SLEEP = 0.05
CODES = {
    "tokens": ("Throttling.AllocationQuota", "Allocated quota exceeded"),
    "requests": ("Throttling.RateQuota", "Requests rate limit exceeded"),
    "surge": ("Throttling", "Request rate increased too quickly"),
}


@dataclass
class Clock:
    """A clock that moves only when the client sleeps, by what it sleeps. Each sleep also
    takes a little real time, so that a request that is not held back by a pause gets to
    the service before the clock has moved."""

    now: float = 0.0
    delays: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def monotonic(self) -> float:
        return self.now

    def _advance(self, seconds: float) -> None:
        with self.lock:
            self.delays.append(seconds)
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        threading.Event().wait(REAL_SLEEP)
        self._advance(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(REAL_SLEEP)
        self._advance(seconds)


@pytest.fixture(autouse=True)
def nothing_to_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    """No learned pace: the client backs off as it does with nothing to learn from."""
    monkeypatch.setattr(RateLearner, "refused", lambda *arguments: False)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The permits' clock, advanced by the client's sleeps only."""
    fake = Clock()
    monkeypatch.setattr(permits_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


@dataclass
class Burst:
    """The service. The first ``gather`` requests are held until all of them arrived; the
    first ``refuse`` of them (every request with ``always``) are refused with a 429 naming
    ``limit`` (``Retry-After: retry_after``), and the others of the burst are answered only
    once the client has taken the refusal in. Records the clock's time at each arrival."""

    clock: Clock
    limit: str
    gather: int
    refuse: int
    retry_after: float = 2.0
    always: bool = False
    state: PermitState | None = None  # the client's permits, set once it has some
    service: FakeService = field(default_factory=lambda: FakeService(dialect="dashscope"))
    arrivals: list[tuple[float, Seen]] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def arrive(self, request: httpx.Request) -> Seen:
        seen = self.service.record(request)
        with self.condition:
            self.arrivals.append((self.clock.now, seen))
            self.condition.notify_all()
        return seen

    def refused(self, seen: Seen) -> bool:
        return self.always or seen.number <= self.refuse

    def ready(self, seen: Seen) -> bool:
        """Whether a request of the burst may be answered now."""
        if seen.number > self.gather:
            return True
        if len(self.arrivals) < self.gather:
            return False
        state = self.state
        return self.refused(seen) or (state is not None and state.epoch + state.tokens.pauses > 0)

    def reply(self, seen: Seen) -> httpx.Response:
        if self.refused(seen):
            code, message = CODES[self.limit]
            headers = {"retry-after": str(self.retry_after)}
            response = error_response(429, code=code, message=message, headers=headers)
        else:
            response = self.service.success(seen.contents)
        seen.status = response.status_code
        return response

    def sync_handler(self, request: httpx.Request) -> httpx.Response:
        seen = self.arrive(request)
        for _ in range(HOLD_SECONDS * 100):
            if self.ready(seen):
                break
            with self.condition:
                self.condition.wait(0.01)
        return self.reply(seen)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        seen = self.arrive(request)
        for _ in range(HOLD_SECONDS * 100):
            if self.ready(seen):
                break
            await asyncio.sleep(0.01)
        return self.reply(seen)

    def after_the_refusals(self) -> list[float]:
        """The clock's time at the arrival of every request sent after the burst."""
        return [when for when, seen in self.arrivals if seen.number > self.gather]


def _sync_client(burst: Burst, concurrency: int, **options: Any) -> Client:
    client = Client(
        api_key=KEY,
        dialect="dashscope",
        max_concurrency=concurrency,
        max_parts_per_request=1,
        http_client=httpx.Client(transport=httpx.MockTransport(burst.sync_handler)),
        **options,
    )
    client._sleep = burst.clock.sleep
    burst.state = permits_of(client)
    return client


def _async_client(burst: Burst, concurrency: int) -> AsyncClient:
    client = AsyncClient(
        api_key=KEY,
        dialect="dashscope",
        max_concurrency=concurrency,
        max_parts_per_request=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(burst.async_handler)),
    )
    client._sleep = burst.clock.asleep
    return client


def _embed(kind: str, burst: Burst, texts: list[str], concurrency: int) -> PermitState:
    """Embed ``texts`` with a client of ``kind``; check every text got its own vector, in
    order, and was answered once; return the client's permits."""
    client: Client | AsyncClient
    if kind == "sync":
        client = _sync_client(burst, concurrency)
        with client:
            result = client.embed(texts)
    else:
        client = _async_client(burst, concurrency)

        async def run() -> Any:
            assert isinstance(client, AsyncClient)
            async with client:
                await client._pool()  # this loop's connections and permits
                burst.state = permits_of(client)
                return await client.embed(texts)

        result = asyncio.run(run())
    assert result.vectors == [text_vector(t) for t in texts]
    answered = sorted(c["text"] for c in burst.service.succeeded())
    assert answered == sorted(texts)  # nothing lost, nothing paid for twice
    assert result.usage.retries == burst.refuse
    assert burst.state is not None
    return burst.state


KINDS = ["sync", "async"]
TEXTS = [f"text number {i}" for i in range(12)]


@pytest.mark.parametrize("kind", KINDS)
def test_token_refusals_keep_concurrency_and_hold_back_every_request(
    kind: str, clock: Clock
) -> None:
    # 8 requests in flight, 2 refused for tokens: the 6 others finish, and their workers
    # take new texts while the refused ones wait out Retry-After
    burst = Burst(clock, "tokens", gather=8, refuse=2)
    state = _embed(kind, burst, TEXTS, concurrency=8)
    assert state.limit == 8  # request concurrency was not touched
    assert state.tokens.limit is not None  # the tokens in flight were
    assert (state.in_flight, state.tokens.in_flight) == (0, 0)
    # nothing was sent before Retry-After had passed: not the retries, not the new texts
    later = burst.after_the_refusals()
    assert len(later) == len(TEXTS) - 8 + 2
    assert min(later) >= burst.retry_after


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_token_refusal_new_requests_do_not_wait(kind: str, clock: Clock) -> None:
    # the same burst refused for requests: the new texts go at once, under the lower limit
    burst = Burst(clock, "requests", gather=8, refuse=2)
    _embed(kind, burst, TEXTS, concurrency=8)
    assert min(burst.after_the_refusals()) < burst.retry_after


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", ["requests", "surge"])
def test_request_refusals_lower_concurrency(kind: str, limit: str, clock: Clock) -> None:
    burst = Burst(clock, limit, gather=8, refuse=2)
    state = _embed(kind, burst, TEXTS, concurrency=8)
    # halved once for the burst (8 -> 4), then 12 successes raise it by one per as many
    # successes in a row as the limit: 4 -> 5 -> 6
    assert state.limit == 6
    assert state.tokens.limit is None  # no token budget: the tokens were never refused
    assert state.in_flight == 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_retries_of_a_surge_come_back_spread_out(kind: str, clock: Clock) -> None:
    burst = Burst(clock, "surge", gather=8, refuse=8, retry_after=0.5)
    _embed(kind, burst, TEXTS[:8], concurrency=8)
    # the first refusal halves the limit to 4; the seven others of its burst each wait a
    # further share of SURGE_SPREAD, so that they come back about four per SURGE_SPREAD
    step = max(burst.retry_after, SURGE_SPREAD) / 4
    expected = [burst.retry_after + k * step for k in range(8)]
    assert sorted(clock.delays) == pytest.approx(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_request_refusals_wait_retry_after_as_given(kind: str, clock: Clock) -> None:
    burst = Burst(clock, "requests", gather=8, refuse=8, retry_after=0.5)
    _embed(kind, burst, TEXTS[:8], concurrency=8)
    assert clock.delays == [0.5] * 8


def test_max_retries_still_counts_retries_when_the_tokens_are_refused(clock: Clock) -> None:
    burst = Burst(clock, "tokens", gather=1, refuse=1, always=True)
    client = _sync_client(burst, 1, max_retries=2)
    with client, pytest.raises(RateLimitError) as caught:
        client.embed(["hello"])
    assert caught.value.limit == "tokens"
    assert len(burst.arrivals) == 3  # one attempt and two retries
    assert caught.value.partial is not None and caught.value.partial.usage.retries == 2
    # the request waited out the pause it caused once per retry, never a second time
    assert clock.delays == [2.0, 2.0]


# --- the permits' decisions, driven by hand -------------------------------------------------


def test_a_tokens_verdict_halves_the_tokens_in_flight_once_per_burst(clock: Clock) -> None:
    state = PermitState(4)
    held = []
    for _ in range(4):
        epoch = state.take(False)
        grant = state.admit(100, 0)
        assert grant is not None and grant.tokens is not None
        held.append((epoch, grant.tokens))
    backoffs = [state.give_back(epoch, "tokens", tokens, 3.0) for epoch, tokens in held]
    assert (state.limit, state.tokens.limit) == (4, 200)  # 400 in flight, halved once
    assert [b.pause for b in backoffs] == [1, 2, 3, 4] and state.tokens.in_flight == 0
    # the pause holds a request that has not waited it out, and nothing else
    assert state.admit(100, 0) == permits_module.Grant(None, 3.0, 4)
    grant = state.admit(100, 4)
    assert grant is not None and grant.tokens is not None
    clock.now = 3.0
    assert state.tokens.wait(0) == 0.0  # over: it holds no one


def test_the_token_budget_holds_back_what_does_not_fit_and_grows_back(clock: Clock) -> None:
    state = PermitState(8)
    budget = state.tokens
    budget.limit = 200
    first = state.admit(150, 0)
    assert first is not None and first.tokens is not None
    assert state.admit(100, 0) is None  # 250 would not fit: it waits for tokens to come back
    state.give_back(state.take(False), "succeeded", first.tokens)
    alone = state.admit(500, 0)  # larger than the budget, and nothing in flight: it goes
    assert alone is not None and alone.tokens is not None
    state.give_back(state.take(False), "succeeded", alone.tokens)
    # 650 tokens succeeded (over the budget of 200) in two requests: one average more
    assert budget.limit == 200 + 650 // 2
    assert budget.in_flight == 0


def test_tokens_verdicts_never_lower_request_concurrency() -> None:
    state = PermitState(8)
    for _ in range(20):
        epoch = state.take(False)
        grant = state.admit(10, state.tokens.pauses)
        assert grant is not None
        state.give_back(epoch, "tokens", grant.tokens, 1.0)
    assert state.limit == 8 and state.tokens.limit == 1
    for verdict in ("throttled", "surge"):
        state.give_back(state.take(False), verdict)
    assert state.limit == 2  # the request limit follows the requests and surge verdicts
