"""A rate limit learned from 429s: a client given none paces itself once the service refuses
it, at a little under what the service was admitting, backs off on each later 429 and climbs
back while requests pass; never above a limit it was given; and, with no 429, not at all.

The learner is driven by hand on a fake clock, against the emulator's own windows in a
small simulation, and through both clients over the wire (``httpx.MockTransport``, the
clock moved only by the client's sleeps, so that every figure is exact)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests._core_fakes import FakeClock, FakeService, error_response, text_vector
from tongyi_vision import AsyncClient, Client, RateLimit
from tongyi_vision.emulator._faults import _per_second, _Window
from tongyi_vision.engine import permits as permits_module
from tongyi_vision.engine.ratelimit import (
    BACK_OFF,
    RECOVER,
    SETTLE,
    PacedSlot,
    RateLearner,
    Slot,
)


def learner(known: RateLimit | None = None) -> tuple[RateLearner, FakeClock]:
    clock = FakeClock()
    made = RateLearner(known)
    made._clock = clock
    return made, clock


# --- the learner, by hand ----------------------------------------------------------------------


def test_without_a_429_nothing_is_paced() -> None:
    learned, clock = learner()
    for _ in range(100):
        learned.succeeded(learned.sent(50), 50)
        clock.now += 0.01
    assert learned.pace is None
    assert learned.requests_per_second is None and learned.tokens_per_second is None


def test_a_first_burst_sets_the_rate_from_what_the_service_admitted() -> None:
    learned, clock = learner()
    sent = []
    for _ in range(16):  # max_concurrency=16 goes out at once; the service admits 10
        sent.append(learned.sent(20))
        clock.now += 0.001
    paced = [learned.refused(record, "requests", 0.9) for record in sent[10:]]
    assert paced == [True] * 6
    assert learned.requests_per_second == pytest.approx(BACK_OFF * 10)
    pace = learned.pace
    assert pace is not None
    first, second = pace.reserve(20), pace.reserve(20)
    assert first.time == pytest.approx(clock.now + 0.9)  # Retry-After is honoured
    assert second.time - first.time == pytest.approx(1 / (BACK_OFF * 10))


@pytest.mark.parametrize(
    ("admitted", "told", "per_second"),
    [
        (10, 0.99, 10 / 1.0),  # a window of a second: 10 a second
        (4, 0.01, 4 / 0.02),  # no more than 4 in flight, answered in 10 ms: 200 a second
        (30, 59.0, 30 / 60.0),  # a minute's allowance spent at once: half a request a second
    ],
)
def test_the_wait_the_service_asks_for_says_what_kind_of_limit_it_is(
    admitted: int, told: float, per_second: float
) -> None:
    learned, clock = learner()
    sent = [learned.sent(20) for _ in range(admitted)]
    clock.now += 0.01  # the burst took 10 ms to go out
    sent.append(learned.sent(20))
    assert learned.refused(sent[-1], "requests", told, told)
    assert learned.requests_per_second == pytest.approx(BACK_OFF * per_second, rel=0.02)


def test_nothing_admitted_is_nothing_to_learn_from() -> None:
    learned, _ = learner()
    record = learned.sent(20)
    assert learned.refused(record, "requests", 1.0) is False  # the caller backs off as before
    assert learned.pace is None


def _paced_send(learned: RateLearner, clock: FakeClock, tokens: int = 20) -> tuple[Slot, Any]:
    """Take a slot of the learned pace, wait for it (on the fake clock) and send."""
    pace = learned.pace
    assert pace is not None
    while not isinstance(slot := pace.reserve_soon(tokens), Slot):
        clock.now += slot
    clock.now = max(clock.now, slot.time)
    return slot, learned.sent(tokens, slot)


def test_each_429_once_the_last_cut_has_settled_cuts_again() -> None:
    learned, clock = learner()
    burst = [learned.sent(20) for _ in range(11)]
    learned.refused(burst[-1], "requests", 0.0)
    start = learned.requests_per_second
    assert start is not None and start == pytest.approx(BACK_OFF * 10)
    _, early = _paced_send(learned, clock)  # sent within a second of the cut: its burst
    learned.refused(early, "requests", 0.0)
    assert learned.requests_per_second == start
    clock.now += SETTLE
    _paced_send(learned, clock)
    slot, late = _paced_send(learned, clock)  # held back by the rate, then refused
    assert isinstance(slot, PacedSlot) and slot.held == "requests"
    learned.refused(late, "requests", 0.0)
    assert learned.requests_per_second == pytest.approx(BACK_OFF * start)


def test_held_requests_that_pass_let_the_rate_climb_back_and_past() -> None:
    learned, clock = learner()
    burst = [learned.sent(20) for _ in range(21)]
    learned.refused(burst[-1], "requests", 0.0)  # 20 admitted in the second: 19 a second
    rates = []
    while clock.now < 100 + 3 * RECOVER:
        _, record = _paced_send(learned, clock)
        learned.succeeded(record, 20)
        rates.append(learned.requests_per_second or 0.0)
    assert rates == sorted(rates)  # only up while nothing is refused
    # near the rate that was refused after RECOVER seconds, and past it after more
    at_recover = rates[int(len(rates) * RECOVER / (3 * RECOVER))]
    assert at_recover == pytest.approx(20, rel=0.02)
    assert rates[-1] > 20 * (1 + (1 - BACK_OFF))


def test_tokens_are_learned_from_what_the_answers_billed() -> None:
    learned, clock = learner()
    for _ in range(4):  # 4,000 tokens billed in the last second
        learned.succeeded(learned.sent(900), 1000)
        clock.now += 0.2
    refused = learned.sent(1000)
    clock.now += 0.1
    assert learned.refused(refused, "tokens", 0.5)
    assert learned.tokens_per_second == pytest.approx(BACK_OFF * 4000)
    assert learned.requests_per_second is None  # the request rate was never refused


def test_a_known_limit_answers_its_own_429s_and_caps_what_is_learned() -> None:
    known = RateLimit(requests_per_minute=600)  # 10 a second
    learned, clock = learner(known)
    for _ in range(30):
        learned.sent(20)
        clock.now += 0.01
    record = learned.sent(20)
    assert learned.refused(record, "requests", 0.5) is False  # the known limit's to answer
    assert learned.pace is None
    assert learned.refused(learned.sent(20), "surge", 0.5) is True  # a surge is learned
    rate = learned.requests_per_second
    assert rate is not None and rate <= 10  # 30 admitted in the second, but 10 is the limit
    for _ in range(500):  # a long climb never passes the known limit
        _, passed = _paced_send(learned, clock)
        learned.succeeded(passed, 20)
        assert (learned.requests_per_second or 0.0) <= 10
    assert learned.requests_per_second == pytest.approx(10)


# --- the learner against the emulator's windows, in a small simulation -----------------------


@dataclass
class Simulation:
    """``workers`` requests at a time against a service that counts requests (``per_second``)
    or tokens (``tokens_per_second``) as the emulator does, ``latency`` seconds an answer,
    a few milliseconds of seeded jitter on the way in; everything on one fake clock."""

    per_second: float | None = None
    tokens_per_second: float | None = None
    requests: int = 400
    workers: int = 16
    latency: float = 0.1
    seed: int = 0
    known: RateLimit | None = None
    learned: RateLearner = field(init=False)
    clock: FakeClock = field(default_factory=FakeClock)
    done: list[float] = field(default_factory=list)
    sent: int = 0
    refused: int = 0
    rates: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.learned = RateLearner(self.known)
        self.learned._clock = self.clock
        self.windows = [_per_second(self.per_second)] if self.per_second else []
        self.token_windows = (
            [_Window(1.0, self.tokens_per_second, "tokens")] if self.tokens_per_second else []
        )
        self.rng = random.Random(self.seed)
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.todo = self.requests

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.order), action))

    def run(self) -> Simulation:
        for _ in range(self.workers):
            self.at(self.clock.now, self.next_request)
        while self.events:
            when, _, action = heapq.heappop(self.events)
            self.clock.now = when
            action()
        return self

    def next_request(self) -> None:
        if self.todo:
            self.todo -= 1
            self.attempt({"tokens": 400 + self.rng.randint(-20, 20)})

    def attempt(self, job: dict[str, Any]) -> None:
        pace = self.learned.pace
        if pace is not None and "slot" not in job:
            taken = pace.reserve_soon(job["tokens"])
            if not isinstance(taken, Slot):
                self.at(self.clock.now + taken, lambda: self.attempt(job))
                return
            job["slot"] = taken
        if "slot" in job and (wait := pace.remaining(job["slot"]) if pace else 0.0) > 0:
            self.at(self.clock.now + wait, lambda: self.attempt(job))
            return
        job["record"] = self.learned.sent(job["tokens"], job.pop("slot", None))
        self.sent += 1
        self.at(self.clock.now + self.rng.expovariate(1 / 0.003), lambda: self.arrive(job))

    def arrive(self, job: dict[str, Any]) -> None:
        now = self.clock.now
        for window in self.windows:
            if (wait := window.wait(1, now)) is not None:
                self.refuse(job, "requests", wait)
                return
        for window in self.windows:
            window.add(1, now)
        self.at(now + self.latency, lambda: self.answer(job))

    def answer(self, job: dict[str, Any]) -> None:
        now = self.clock.now
        for window in self.token_windows:
            if (wait := window.wait(job["tokens"], now)) is not None:
                self.refuse(job, "tokens", wait)
                return
        for window in self.token_windows:
            window.add(job["tokens"], now)
        self.learned.succeeded(job["record"], job["tokens"])
        self.done.append(now)
        self.rates.append(self.learned.requests_per_second or 0.0)
        self.next_request()

    def refuse(self, job: dict[str, Any], limit: str, wait: float) -> None:
        self.refused += 1
        self.learned.refused(job.pop("record"), limit, wait)
        self.at(self.clock.now + wait, lambda: self.attempt(job))

    def share(self, allowed: float, per: float = 1.0) -> float:
        """The steady rate (the middle 80% of the answers) as a share of ``allowed``."""
        skip = len(self.done) // 10
        middle = self.done[skip : len(self.done) - skip]
        return (len(middle) - 1) * per / (middle[-1] - middle[0]) / allowed


@pytest.mark.parametrize("per_second", [10.0, 20.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_learned_rate_converges_under_a_fixed_request_limit(
    per_second: float, seed: int
) -> None:
    run = Simulation(per_second=per_second, requests=int(25 * per_second), seed=seed).run()
    assert len(run.done) == run.requests  # every request got through
    assert 0.90 <= run.share(per_second) <= 1.0
    assert run.refused < 0.10 * run.sent
    # the rate it settles at stays close to the limit: refused a little above it, never far
    settled = run.rates[len(run.rates) // 4 :]
    assert max(settled) < 1.15 * per_second and min(settled) > 0.8 * per_second


def test_the_learned_rate_converges_under_a_fixed_token_limit() -> None:
    tokens = 40 * 400.0  # 40 requests of about 400 tokens a second
    run = Simulation(tokens_per_second=tokens, requests=1000).run()
    assert len(run.done) == run.requests
    assert 0.90 <= run.share(40) <= 1.0
    assert run.refused < 0.10 * run.sent
    assert run.learned.requests_per_second is None  # tokens were refused, not requests


def test_a_limit_that_drops_is_followed_down() -> None:
    run = Simulation(per_second=20.0, requests=200).run()
    high = run.learned.requests_per_second
    assert high is not None and high > 16
    run.windows = [_per_second(10.0)]  # another client takes half of the account
    run.todo, run.done, run.sent, run.refused = 300, [], 0, 0
    for _ in range(run.workers):
        run.at(run.clock.now, run.next_request)
    run.run()
    assert 0.85 <= run.share(10.0) <= 1.0
    assert (run.learned.requests_per_second or 0.0) < 11


# --- through the clients, over the wire ------------------------------------------------------


@dataclass
class Limited:
    """The embeddings endpoint behind the emulator's window: ``per_second`` requests, or
    ``tokens_per_second`` of the tokens it bills (10 a part), on the fake clock; refuses
    beyond with the 429 of that limit and the exact wait as ``retry-after-ms``. Records the
    clock's time at each arrival."""

    clock: FakeClock
    per_second: float | None = None
    tokens_per_second: float | None = None
    code: str = "Throttling.RateQuota"
    service: FakeService = field(default_factory=FakeService)
    arrivals: list[float] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        self.window = (
            _per_second(self.per_second)
            if self.per_second
            else _Window(1.0, self.tokens_per_second or 1.0, "tokens")
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.now
        seen = self.service.record(request)
        self.arrivals.append(now)
        weight = 1 if self.per_second else 10 * len(seen.contents)
        wait = self.window.wait(weight, now)
        if wait is not None:
            self.refused += 1
            seen.status = 429
            headers = {"retry-after-ms": str(round(wait * 1000))}
            return error_response(429, code=self.code, headers=headers, message="slow down")
        self.window.add(weight, now)
        response = self.service.success(seen.contents)
        seen.status = 200
        return response


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One fake clock for the service, the client's learner and its permits' pauses."""
    fake = FakeClock()
    monkeypatch.setattr(permits_module, "time", SimpleNamespace(monotonic=fake))
    return fake


def _embed(kind: str, service: Limited, texts: list[str], **options: Any) -> Any:
    """Embed ``texts`` one a request, a worker at a time, with a client of ``kind`` whose
    sleeps move the fake clock; returns the result and the client."""
    clock = service.clock

    def sleep(seconds: float) -> None:
        clock.now += seconds

    async def asleep(seconds: float) -> None:
        clock.now += seconds

    settings: dict[str, Any] = {"max_parts_per_request": 1, "max_concurrency": 1, **options}
    if kind == "sync":
        client = Client(
            "k", http_client=httpx.Client(transport=httpx.MockTransport(service)), **settings
        )
        client._sleep = sleep
        client._learner._clock = clock
        with client:
            return client.embed_texts(texts), client

    async def run() -> Any:
        transport = httpx.MockTransport(service)
        aclient = AsyncClient("k", http_client=httpx.AsyncClient(transport=transport), **settings)
        aclient._sleep = asleep
        aclient._learner._clock = clock
        async with aclient:
            return await aclient.embed_texts(texts), aclient

    return asyncio.run(run())


KINDS = ["sync", "async"]
TEXTS = [f"text {i}" for i in range(30)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("code", "limit"),
    [("Throttling.RateQuota", "requests"), ("Throttling", "surge")],
)
def test_after_a_429_the_client_paces_its_requests(
    kind: str, code: str, limit: str, clock: FakeClock
) -> None:
    service = Limited(clock, per_second=5, code=code)
    result, client = _embed(kind, service, TEXTS)
    assert result.vectors == [text_vector(t) for t in TEXTS]  # every vector, in order
    assert sorted(c["text"] for c in service.service.succeeded()) == sorted(TEXTS)  # billed once
    # the first five went at once and the sixth was refused; from then on the client went
    # at the pace it learned, and was never refused again
    assert service.refused == 1
    rate = client._learner.requests_per_second
    assert rate is not None and BACK_OFF * 5 <= rate <= 5
    later = service.arrivals[6:]
    assert min(b - a for a, b in itertools.pairwise(later)) >= 1 / (BACK_OFF * 5) * 0.9
    assert result.usage.retries == 1


@pytest.mark.parametrize("kind", KINDS)
def test_after_a_tokens_429_the_client_paces_its_tokens(kind: str, clock: FakeClock) -> None:
    # 50 tokens a second; the fake bills 10 a text (more than the client's estimate of a few,
    # so the pace also has to take the billed tokens over its estimates)
    service = Limited(clock, tokens_per_second=50, code="Throttling.AllocationQuota")
    result, client = _embed(kind, service, TEXTS)
    assert result.vectors == [text_vector(t) for t in TEXTS]
    assert sorted(c["text"] for c in service.service.succeeded()) == sorted(TEXTS)
    assert service.refused == 1
    rate = client._learner.tokens_per_second
    assert rate is not None and BACK_OFF * 50 <= rate <= 50
    assert client._learner.requests_per_second is None  # requests were never refused
    # paced by its billed tokens from then on: never more than 50 in any second
    later = service.arrivals[6:]
    for start in later:
        assert sum(1 for t in later if start <= t < start + 1.0) * 10 <= 50


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_that_is_never_refused_is_never_paced(kind: str, clock: FakeClock) -> None:
    service = Limited(clock, per_second=1000)
    result, client = _embed(kind, service, TEXTS, max_concurrency=4)
    assert result.vectors == [text_vector(t) for t in TEXTS]
    assert client._learner.pace is None
    assert clock.now == 100.0  # it never waited for anything
