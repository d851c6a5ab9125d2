"""One budget for a cluster: the :class:`Budget` a named Ray actor holds, and the
:class:`SharedRateLimit` proxies that every client of a job draws its slots from. Here the
proxies reach the budget in this process (``LocalChannel``), on clocks of their own, so that
what crosses between machines (delays, never times) is what is tested; no Ray runs."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from tests._core_fakes import FakeService, MakeClient
from tongyi_vision import ConfigurationError, RateLimit
from tongyi_vision.ray import SharedRateLimit
from tongyi_vision.ray._limit import Budget, LocalChannel, SharedSlot


class Clock:
    """A clock that moves only when told; ``start`` sets where it reads from."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def proxy(budget: Budget, clock: Clock, **options: Any) -> SharedRateLimit:
    limit = SharedRateLimit(requests_per_minute=600, **options)  # a slot every 0.1 s
    limit._clock = clock
    return limit.connect(LocalChannel(budget))


class Recording(LocalChannel):
    """A channel that also keeps what was asked of the budget."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(budget)
        self.calls: list[str] = []

    def call(self, method: str, *args: Any) -> Any:
        self.calls.append(method)
        return super().call(method, *args)


@pytest.fixture
def shared() -> tuple[Clock, Budget, list[Clock], Callable[[int], SharedRateLimit]]:
    """The actor's clock and budget, and proxies each on a clock far from the actor's."""
    actor_clock = Clock(1_000.0)
    budget = Budget(600, None, clock=actor_clock)
    clocks: list[Clock] = []

    def make(offset: int) -> SharedRateLimit:
        clock = Clock(actor_clock.now + offset)
        clocks.append(clock)
        return proxy(budget, clock)

    return actor_clock, budget, clocks, make


def test_proxies_on_other_clocks_share_one_spacing(shared: Any) -> None:
    _, _, _, make = shared
    first, second = make(-5_000), make(+7_000)  # machines whose clocks disagree by hours
    slots = [first.reserve(1), second.reserve(1), first.reserve(1), second.reserve(1)]
    waits = [first.remaining(slots[0]), second.remaining(slots[1])]
    waits += [first.remaining(slots[2]), second.remaining(slots[3])]
    # one budget: the four slots come 0.1 s (plus the headroom) apart, whoever took them
    assert waits[0] == 0
    for earlier, later in itertools.pairwise(waits):
        assert later - earlier == pytest.approx(0.1 / 0.98, rel=1e-3)
    assert all(isinstance(slot, SharedSlot) for slot in slots)


def test_a_slot_is_due_on_the_local_clock_and_confirmed_by_the_budget(shared: Any) -> None:
    actor_clock, budget, clocks, make = shared
    limit = make(123)
    channel = Recording(budget)
    limit.connect(channel)
    limit.reserve(1)
    slot = limit.reserve(1)
    wait = limit.remaining(slot)
    assert wait > 0 and channel.calls == ["reserve", "reserve"]  # not due: no round trip
    clocks[0].advance(wait)
    actor_clock.advance(wait)
    assert limit.remaining(slot) == 0
    assert channel.calls[-1] == "remaining"  # due: the budget confirms it


def test_a_cool_down_from_one_proxy_moves_the_pending_slots_of_another(shared: Any) -> None:
    actor_clock, _, clocks, make = shared
    refused, waiting = make(-50), make(+50)
    waiting.reserve(1)  # due now
    slot = waiting.reserve(1)  # due in about 0.1 s
    refused.cool_down(5.0)  # a 429 seen by the other client
    for clock in (actor_clock, *clocks):
        clock.advance(0.2)  # the slot's old time has passed everywhere
    assert waiting.remaining(slot) == pytest.approx(5.0 - 0.2, abs=0.15)  # the cool-down, left
    for clock in (actor_clock, *clocks):
        clock.advance(5.0)
    assert waiting.remaining(slot) == 0


def test_settled_slots_are_forgotten_and_unsettled_ones_after_a_while(shared: Any) -> None:
    actor_clock, budget, _, make = shared
    limit = make(0)
    settled = limit.reserve(10)
    limit.settle(settled, 7)
    assert settled.tokens == 7
    limit.reserve(10)  # an attempt that failed without a 429: never settled
    assert budget.pending() == 1
    actor_clock.advance(600)
    limit.reserve(1)
    assert budget.pending() == 1  # only the new one


def test_the_budget_answers_delays_not_times() -> None:
    clock = Clock(5_000_000.0)
    budget = Budget(60, None, clock=clock)  # a slot a second
    first, delay = budget.reserve(1)
    second, later = budget.reserve(1)
    assert delay == 0.0
    assert later == pytest.approx(1 / 0.98)
    assert budget.remaining(second) == later
    clock.advance(0.5)
    assert budget.remaining(second) == pytest.approx(1 / 0.98 - 0.5)
    assert budget.remaining(999) == 0.0  # unknown (forgotten) slots are due
    assert budget.settings() == (60, None, 1, 0.02)
    assert first != second


def test_a_shared_limit_pickles_to_its_settings_and_name_not_its_connection(
    shared: Any,
) -> None:
    _, _, _, make = shared
    limit = make(0)
    limit.reserve(1)
    copy = pickle.loads(pickle.dumps(limit))
    assert isinstance(copy, SharedRateLimit)
    assert copy.settings() == limit.settings() and copy.name == limit.name
    assert copy.namespace == "tongyi-vision" and copy._channel is None
    assert "name='tongyi-vision-rate-limit'" in repr(copy)


def test_of_shares_a_plain_limit_and_keeps_a_shared_one() -> None:
    plain = RateLimit(requests_per_minute=120, tokens_per_minute=50_000, burst=2, headroom=0.1)
    shared = SharedRateLimit.of(plain, name="team")
    assert shared.settings() == (120, 50_000, 2, 0.1) and shared.name == "team"
    assert SharedRateLimit.of(shared) is shared
    with pytest.raises(ConfigurationError, match="RateLimit"):
        SharedRateLimit.of("600 a minute")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["name", "namespace"])
def test_the_name_and_namespace_must_be_strings(field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SharedRateLimit(requests_per_minute=60, **{field: " "})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        SharedRateLimit(requests_per_minute=-1)


def test_a_client_spends_the_shared_budget_for_each_request(
    make_client: MakeClient, service: FakeService
) -> None:
    budget = Budget(600, None)
    channel = Recording(budget)
    limit = SharedRateLimit(requests_per_minute=600).connect(channel)
    client = make_client(service, rate_limit=limit, max_parts_per_request=1)
    result = client.embed_texts(["one", "two", "three"])
    assert len(result.vectors) == 3
    assert channel.calls.count("reserve") == 3  # one slot per request
    assert channel.calls.count("settle") == 3  # each charged what it was billed
    assert budget.pending() == 0
