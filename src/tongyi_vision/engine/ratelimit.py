"""A rate limit the caller knows: requests and tokens per minute, metered before sending.

The service limits an account per minute and also per second (a 60th of the
minute's allowance), and its surge guard refuses bursts below both. So
:class:`RateLimit` does not let a minute's allowance go at once: it hands out
*slots*, one request every ``60 / requests_per_minute`` seconds (a little less
often: ``headroom``), and keeps the tokens of the slots handed out in the last
second and the last minute under the allowance of each, spaced by their size.
A request reserves its slot with its estimated tokens before it is sent (a
waiting request holds a slot in the future, so refused requests come back one
after another instead of as a herd) and corrects the estimate with the tokens
the answer bills.

The state is guarded by a ``threading.Lock`` and no method blocks while holding
it, so one object can be shared by several clients, threads and event loops:
:meth:`RateLimit.acquire` waits with ``time.sleep``, :meth:`RateLimit.aacquire`
with ``asyncio.sleep``, and the clients wait through their own drivers.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ..wire.errors import ConfigurationError

_DUST = 1e-9
DEFAULT_HEADROOM = 0.02
"""Share of each limit left unused, so that the jitter between the client's clock and the
service's (a thread waking late, a slow network) does not push a request over it."""


class Slot:
    """A request's place in a :class:`RateLimit`: when it may be sent (``time``, on the
    limiter's clock) and the tokens it is charged."""

    __slots__ = ("time", "tokens")

    def __init__(self, time: float, tokens: int) -> None:
        self.time = time
        self.tokens = tokens

    def __repr__(self) -> str:
        return f"Slot(time={self.time:.3f}, tokens={self.tokens})"


class _Window:
    """The slots of the last ``span`` seconds, whose weight (1 each, or their tokens, read
    live so that a correction counts at once) is kept under ``capacity``; in time order."""

    def __init__(self, span: float, capacity: float, tokens: bool) -> None:
        self.span = span
        self.capacity = capacity
        self.tokens = tokens
        self.slots: deque[Slot] = deque()

    def weight(self, slot: Slot) -> float:
        return slot.tokens if self.tokens else 1.0

    def prune(self, now: float) -> None:
        while self.slots and self.slots[0].time <= now - self.span:
            self.slots.popleft()

    def earliest(self, at: float, weight: float) -> float:
        """The first time from ``at`` at which ``weight`` more fits; a weight larger than the
        whole window fits an empty one, so it is slowed, never refused."""
        inside = [slot for slot in self.slots if slot.time > at - self.span]
        left = sum(map(self.weight, inside))
        if not inside or left + weight <= self.capacity + _DUST:
            return at
        for slot in inside:
            left -= self.weight(slot)
            if left + weight <= self.capacity + _DUST or left <= _DUST:
                return slot.time + self.span
        return inside[-1].time + self.span  # pragma: no cover - the loop empties the window

    def add(self, slot: Slot) -> None:
        self.slots.append(slot)


class RateLimit:
    """The rate limit of an account, known in advance: share one object among every client
    that spends it.

    >>> limit = RateLimit(requests_per_minute=600, tokens_per_minute=1_000_000)
    >>> client = Client(rate_limit=limit)
    >>> aclient = AsyncClient(rate_limit=limit)   # the same budget, from asyncio code

    - ``requests_per_minute``: requests are let out evenly, one every
      ``60 / requests_per_minute`` seconds, never more in a second than a 60th of it.
    - ``tokens_per_minute``: each request is charged its estimated tokens before it is
      sent and the billed tokens after; the tokens of the last second stay under a 60th
      of the allowance, those of the last minute under the allowance.
    - ``burst``: requests that may go back to back after a quiet spell (default 1: none);
      more are let out only as far as the per-second share allows.
    - ``headroom``: the share of each limit left unused (default 2%), for clock jitter.

    Either limit may be left out (``None``), not both. A 429 that comes anyway cools
    every client sharing the limiter down (:meth:`cool_down`).
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst: int = 1,
        headroom: float = DEFAULT_HEADROOM,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not _positive(value):
                raise ConfigurationError(
                    f"RateLimit({name}=...) must be a positive number or None, not {value!r}"
                )
        if requests_per_minute is None and tokens_per_minute is None:
            raise ConfigurationError(
                "RateLimit needs requests_per_minute=..., tokens_per_minute=... or both "
                "(the limits of your account for this model)"
            )
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"RateLimit(burst=...) must be an int >= 1, not {burst!r}")
        if not (isinstance(headroom, (int, float)) and 0 <= headroom < 0.5):
            raise ConfigurationError(
                f"RateLimit(headroom=...) must be a share in [0, 0.5), not {headroom!r}"
            )
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.burst = burst
        self.headroom = float(headroom)
        self._clock: Callable[[], float] = time.monotonic
        self._lock = threading.Lock()
        keep = 1.0 - self.headroom
        stretch = 1.0 / keep  # windows a little longer than the service's
        self._windows: list[_Window] = []
        self._interval = 0.0
        self._token_rate = 0.0
        if requests_per_minute is not None:
            self._interval = 60.0 / (requests_per_minute * keep)
            per_second = requests_per_minute / 60
            if per_second >= 1:
                self._windows.append(_Window(stretch, math.floor(per_second), tokens=False))
            self._windows.append(_Window(60.0 * stretch, requests_per_minute, tokens=False))
        if tokens_per_minute is not None:
            self._token_rate = tokens_per_minute * keep / 60
            self._windows.append(_Window(stretch, tokens_per_minute / 60, tokens=True))
            self._windows.append(_Window(60.0 * stretch, tokens_per_minute, tokens=True))
        self._next_request = -math.inf  # the earliest the next request may go (spacing)
        self._next_tokens = -math.inf
        self._last = -math.inf  # the latest slot handed out: slots go in order
        self._cool_until = -math.inf

    def __repr__(self) -> str:
        return (
            f"RateLimit(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r})"
        )

    def reserve(self, tokens: int = 0) -> Slot:
        """Take the next slot for a request of ``tokens`` estimated tokens; it may be sent
        once :meth:`remaining` says 0. Never blocks."""
        tokens = max(0, int(tokens))
        with self._lock:
            now = self._clock()
            for window in self._windows:
                window.prune(now)
            at = max(now, self._last, self._cool_until, self._next_tokens)
            at = max(at, self._next_request - (self.burst - 1) * self._interval)
            # each window may push it later, and a later time may matter to another window
            moved = True
            while moved:
                moved = False
                for window in self._windows:
                    fits = window.earliest(at, tokens if window.tokens else 1)
                    if fits > at:
                        at, moved = fits, True
            slot = Slot(at, tokens)
            for window in self._windows:
                window.add(slot)
            self._last = at
            if self._interval:
                self._next_request = max(self._next_request, at) + self._interval
            if self._token_rate:
                self._next_tokens = at + tokens / self._token_rate
            return slot

    def remaining(self, slot: Slot) -> float:
        """Seconds until ``slot`` may be sent (a cool-down may have moved it later)."""
        with self._lock:
            return max(0.0, slot.time - self._clock())

    def settle(self, slot: Slot, tokens: int) -> None:
        """Charge ``slot`` the ``tokens`` its answer billed instead of its estimate (0 for a
        refused request: the service bills it nothing)."""
        tokens = max(0, int(tokens))
        with self._lock:
            delta = tokens - slot.tokens
            if not delta:
                return
            slot.tokens = tokens
            if self._token_rate:
                self._next_tokens += delta / self._token_rate

    def cool_down(self, seconds: float) -> None:
        """A 429 came anyway: no slot starts before ``seconds`` from now. Slots already
        handed out and not yet due move later together, keeping their spacing."""
        with self._lock:
            now = self._clock()
            until = now + max(0.0, seconds)
            if until <= self._cool_until:
                return
            self._cool_until = until
            pending = self._pending(now)
            if pending:
                shift = until - pending[0].time
                if shift > 0:
                    for slot in pending:
                        slot.time += shift
                    self._last += shift
                    self._next_request += shift
                    self._next_tokens += shift

    def _pending(self, now: float) -> list[Slot]:
        """The slots handed out and not yet due, in order (each window holds them all)."""
        if not self._windows:  # pragma: no cover - a limit always has a window
            return []
        widest = max(self._windows, key=lambda w: w.span)
        return [slot for slot in widest.slots if slot.time > now]

    def acquire(self, tokens: int = 0) -> Slot:
        """Wait (``time.sleep``) for a slot of ``tokens`` and return it; for code that sends
        requests of its own under the same budget."""
        slot = self.reserve(tokens)
        while (wait := self.remaining(slot)) > 0:
            time.sleep(wait)
        return slot

    async def aacquire(self, tokens: int = 0) -> Slot:
        """:meth:`acquire` for asyncio code: waits with ``asyncio.sleep``, on any event loop."""
        slot = self.reserve(tokens)
        # a cool-down may move the slot later while it waits: look again after each sleep
        while (wait := self.remaining(slot)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        return slot


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )
