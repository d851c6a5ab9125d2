"""One account, one budget: a rate limit held by a named Ray actor, shared by a cluster.

The account's limits bind every request it sends, whichever machine sends it. So
the :class:`~tongyi_vision.RateLimit` of a Ray job lives in ONE actor
(:class:`Budget`, named, ``num_cpus=0``), and each client of the job holds a
:class:`SharedRateLimit`: a ``RateLimit`` whose four methods the client's drivers
call (``reserve``, ``remaining``, ``settle``, ``cool_down``) are answered by that
actor. The client takes it as any ``RateLimit``, so its requests are let out in
the actor's slots, and a 429 seen by one client cools every client down.

Clocks differ between machines, so the actor hands out *delays* ("this slot is due
in 0.4 s"), never times; each proxy turns a delay into a time on its own clock,
and asks the actor again when a slot falls due (a cool-down may have moved it).
A request costs two round trips to the actor (its slot, and the check when it is
due) and one message that is not waited for (the tokens it was billed).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..engine.ratelimit import DEFAULT_HEADROOM, RateLimit, Slot
from ..wire.errors import ConfigurationError

DEFAULT_NAME = "tongyi-vision-rate-limit"
"""The actor's name when none is given: the jobs of a cluster share one account's budget."""
DEFAULT_NAMESPACE = "tongyi-vision"
"""The Ray namespace of the actor, whatever the job's own: so that other jobs find it."""
# Slots not settled (an attempt that failed without a 429) are forgotten this long after
# they were due: the windows of the limit have let them go by then.
_FORGET_AFTER = 180.0

Settings = tuple[float | None, float | None, int, float]
"""requests_per_minute, tokens_per_minute, burst, headroom."""


class Budget:
    """The one :class:`RateLimit` of a shared budget, as the named actor holds it.

    Slots are known to callers by number; every answer about a slot's time is a delay
    from now on this actor's clock.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        burst: int = 1,
        headroom: float = DEFAULT_HEADROOM,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = RateLimit(
            requests_per_minute, tokens_per_minute, burst=burst, headroom=headroom
        )
        self._limit._clock = clock
        self._clock = clock
        self._slots: dict[int, Slot] = {}
        self._order: deque[int] = deque()
        self._numbers = 0

    def settings(self) -> Settings:
        """The limits it holds, to check that a job asking for this budget means the same."""
        limit = self._limit
        return (limit.requests_per_minute, limit.tokens_per_minute, limit.burst, limit.headroom)

    def reserve(self, tokens: int) -> tuple[int, float]:
        """The number of the next slot for ``tokens`` estimated tokens, and its delay."""
        self._forget()
        slot = self._limit.reserve(tokens)
        self._numbers += 1
        self._slots[self._numbers] = slot
        self._order.append(self._numbers)
        return self._numbers, self._limit.remaining(slot)

    def remaining(self, number: int) -> float:
        """Seconds until slot ``number`` is due (0 for a slot forgotten or settled)."""
        slot = self._slots.get(number)
        return 0.0 if slot is None else self._limit.remaining(slot)

    def settle(self, number: int, tokens: int) -> None:
        """Charge slot ``number`` the tokens its answer billed (0 for a refused request)."""
        slot = self._slots.pop(number, None)
        if slot is not None:
            self._limit.settle(slot, tokens)

    def cool_down(self, seconds: float) -> None:
        """A 429 came anyway: no slot starts before ``seconds`` from now, for every sharer."""
        self._limit.cool_down(seconds)

    def pending(self) -> int:
        """Slots handed out and neither settled nor forgotten (for tests and monitoring)."""
        return len(self._slots)

    def _forget(self) -> None:
        now = self._clock()
        while self._order:
            slot = self._slots.get(self._order[0])
            if slot is not None and slot.time > now - _FORGET_AFTER:
                break
            number = self._order.popleft()
            self._slots.pop(number, None)


class Channel(Protocol):
    """How a proxy reaches its budget: ``call`` waits for the answer, ``send`` does not."""

    def call(self, method: str, *args: Any) -> Any: ...

    def send(self, method: str, *args: Any) -> None: ...


class SharedSlot(Slot):
    """A slot of a shared budget: its number there, and when it is due on this machine."""

    __slots__ = ("number",)

    def __init__(self, time: float, tokens: int, number: int) -> None:
        super().__init__(time, tokens)
        self.number = number


class SharedRateLimit(RateLimit):
    """A :class:`~tongyi_vision.RateLimit` held by one named Ray actor and shared by every
    client that holds this object, or one made with the same ``name``: the actors of a
    job, other jobs on the cluster, other machines.

    >>> limit = SharedRateLimit(requests_per_minute=600, name="team-account")
    >>> ds = embed_dataset(ds, column="text", rate_limit=limit)
    >>> Client(rate_limit=limit)  # this process spends the same budget too

    It pickles to its settings and name, so it can be handed to Ray tasks and actors;
    each process finds the actor by name (in the Ray namespace ``namespace``), and the
    first to look starts it (``num_cpus=0``). An actor found under the name with other
    limits is a :class:`~tongyi_vision.ConfigurationError`: one name, one account. The
    actor lives as long as the job that started it; a later job that finds it gone
    starts another. Needs a running Ray (``ray.init()``).

    :func:`embed_dataset` turns a plain ``RateLimit`` into one of these (with the
    default name), and starts its actor on the driver.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst: int = 1,
        headroom: float = DEFAULT_HEADROOM,
        name: str = DEFAULT_NAME,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        super().__init__(requests_per_minute, tokens_per_minute, burst=burst, headroom=headroom)
        for label, value in (("name", name), ("namespace", namespace)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(
                    f"SharedRateLimit({label}=...) must be a non-empty string, not {value!r}"
                )
        self.name = name
        self.namespace = namespace
        self._channel: Channel | None = None
        self._connecting = threading.Lock()

    @classmethod
    def of(
        cls, limit: RateLimit, *, name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE
    ) -> SharedRateLimit:
        """``limit`` shared under ``name``: itself if it is a ``SharedRateLimit`` already."""
        if isinstance(limit, SharedRateLimit):
            return limit
        if not isinstance(limit, RateLimit):
            raise ConfigurationError(
                "rate_limit must be a tongyi_vision.RateLimit (for example "
                f"RateLimit(requests_per_minute=600)), not {type(limit).__name__}"
            )
        return cls(
            limit.requests_per_minute,
            limit.tokens_per_minute,
            burst=limit.burst,
            headroom=limit.headroom,
            name=name,
            namespace=namespace,
        )

    def settings(self) -> Settings:
        """The limits this budget holds."""
        return (self.requests_per_minute, self.tokens_per_minute, self.burst, self.headroom)

    def connect(self, channel: Channel | None = None) -> SharedRateLimit:
        """Find (or start) the budget's actor now rather than at the first request; a
        ``channel`` of your own replaces it (an in-process budget, in tests)."""
        with self._connecting:
            if channel is not None:
                self._channel = channel
            elif self._channel is None:
                channel = _RayChannel(self.name, self.namespace, self.settings())
                channel.open()  # found or started now: the limits are checked here
                self._channel = channel
        return self

    def _reach(self) -> Channel:
        channel = self._channel
        return channel if channel is not None else self.connect()._reach()

    # --- what the client's drivers call ---

    def reserve(self, tokens: int = 0) -> Slot:
        """Take the next slot of the shared budget (a round trip to its actor)."""
        tokens = max(0, int(tokens))
        number, delay = self._reach().call("reserve", tokens)
        return SharedSlot(self._clock() + float(delay), tokens, int(number))

    def remaining(self, slot: Slot) -> float:
        """Seconds until ``slot`` may be sent: the local estimate until it falls due, then
        the actor's answer (a cool-down may have moved it later)."""
        left = slot.time - self._clock()
        if left > 0 or not isinstance(slot, SharedSlot):
            return max(0.0, left)
        delay = max(0.0, float(self._reach().call("remaining", slot.number)))
        slot.time = self._clock() + delay
        return delay

    def settle(self, slot: Slot, tokens: int) -> None:
        """Tell the budget what ``slot``'s answer billed (not waited for)."""
        tokens = max(0, int(tokens))
        slot.tokens = tokens
        if isinstance(slot, SharedSlot):
            self._reach().send("settle", slot.number, tokens)

    def cool_down(self, seconds: float) -> None:
        """A 429 came anyway: cool every sharer of the budget down (not waited for)."""
        self._reach().send("cool_down", max(0.0, float(seconds)))

    def __repr__(self) -> str:
        return (
            f"SharedRateLimit(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r}, name={self.name!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (*self.settings(), self.name, self.namespace),
        )


def _rebuild(
    requests_per_minute: float | None,
    tokens_per_minute: float | None,
    burst: int,
    headroom: float,
    name: str,
    namespace: str,
) -> SharedRateLimit:
    return SharedRateLimit(
        requests_per_minute,
        tokens_per_minute,
        burst=burst,
        headroom=headroom,
        name=name,
        namespace=namespace,
    )


class LocalChannel:
    """A :class:`Budget` in this process, reached directly: for tests, and for code that
    wants the proxy's behaviour without Ray."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            return getattr(self.budget, method)(*args)

    def send(self, method: str, *args: Any) -> None:
        self.call(method, *args)


class _RayChannel:
    """The budget's named actor, found or started on first use; started again (once per
    call) if it has died, for instance with the job that started it."""

    def __init__(self, name: str, namespace: str, settings: Settings) -> None:
        self.name = name
        self.namespace = namespace
        self.settings = settings
        self._actor: Any = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Find the actor, or start it."""
        self._handle()

    def call(self, method: str, *args: Any) -> Any:
        ray = _ray()
        try:
            return ray.get(getattr(self._handle(), method).remote(*args))
        except ray.exceptions.RayActorError:
            return ray.get(getattr(self._handle(renew=True), method).remote(*args))

    def send(self, method: str, *args: Any) -> None:
        ray = _ray()
        try:
            getattr(self._handle(), method).remote(*args)
        except ray.exceptions.RayActorError:  # pragma: no cover - found dead on submission
            getattr(self._handle(renew=True), method).remote(*args)

    def _handle(self, renew: bool = False) -> Any:
        with self._lock:
            if self._actor is None or renew:
                self._actor = self._find()
            return self._actor

    def _find(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            raise ConfigurationError(
                "a SharedRateLimit lives in a Ray actor: call ray.init() (or "
                "ray.init(address=...)) first"
            )
        actor_class = ray.remote(Budget).options(
            name=self.name,
            namespace=self.namespace,
            get_if_exists=True,
            num_cpus=0,
            max_restarts=0,
        )
        actor = actor_class.remote(*self.settings)
        found = tuple(ray.get(actor.settings.remote()))
        if found != self.settings:
            raise ConfigurationError(
                f"the shared rate limit {self.name!r} (Ray namespace {self.namespace!r}) holds "
                f"{_describe(found)}, not {_describe(self.settings)}: jobs that share a name share "
                "one account's limits; pass the same limits, or another name=..."
            )
        return actor


def _describe(settings: tuple[Any, ...]) -> str:
    rpm, tpm, burst, headroom = settings
    return f"requests_per_minute={rpm}, tokens_per_minute={tpm}, burst={burst}, headroom={headroom}"


def _ray() -> Any:
    from ._session import load_ray

    return load_ray()
