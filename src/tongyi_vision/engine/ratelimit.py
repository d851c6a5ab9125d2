"""Rate limits: one the caller knows (:class:`RateLimit`), and one a client learns from its
429s (:class:`RateLearner`).

The service limits an account per minute and also per second (a 60th of the
minute's allowance), and its surge guard refuses bursts below both. So
:class:`RateLimit` does not let a minute's allowance go at once: it hands out
*slots*, one request every ``60 / requests_per_minute`` seconds (a little less
often: the *margin*), and keeps the tokens of the slots handed out in the last
second and the last minute under the allowance of each, spaced by their size.
A request reserves its slot with its estimated tokens before it is sent (a
waiting request holds a slot in the future, so refused requests come back one
after another instead of as a herd) and corrects the estimate with the tokens
the answer bills.

The margin starts at ``headroom`` (2%). Requests spaced evenly at 98% of a
per-second limit tolerate 20 ms of jitter between the client's clock and the
service's; on a loaded machine or a slow network there is more. So a 429 that
comes anyway widens the margin (by :data:`MARGIN_STEP`, to at most
:data:`MARGIN_MOST`) and the margin narrows back to ``headroom`` over the
following seconds (:data:`MARGIN_EASE` a second): the limiter settles where the
jitter stops costing refusals, never above the limit it was given.

A client given no limit learns one (:class:`RateLearner`): it notes when each
attempt was sent and, at the first 429 for requests, tokens or a surge, starts
pacing itself (:class:`Pace`) at a little under the rate the service was
admitting in the second before (the requests sent in it less those refused; the
tokens its answers billed; counted up to when the 429's Retry-After says the
service admits more), cuts that rate on each further 429 once the last cut
has settled, and climbs back while requests pass (a cubic curve: quickly at
first, slowly near the rate that was refused, quickly again past it). With no
429, nothing is paced and nothing waits.

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
from collections.abc import Callable, Iterable
from typing import Literal

from ..wire.errors import ConfigurationError

_DUST = 1e-9
DEFAULT_HEADROOM = 0.02
"""Share of each limit left unused at least, so that the jitter between the client's clock
and the service's (a thread waking late, a busy server, a slow network) does not push a
request over it."""
MARGIN_STEP = 0.02
"""How much more of each limit a :class:`RateLimit` leaves unused after a 429 that came
anyway (once a second at most: the refusals of one burst widen it once)."""
MARGIN_MOST = 0.10
"""The most of each limit a :class:`RateLimit` leaves unused, however many 429s come."""
MARGIN_EASE = 0.002
"""How fast the margin narrows back to ``headroom`` without 429s: this share a second."""
TOKEN_SLACK = 0.05
"""Seconds by which a :class:`RateLimit`'s token spacing may run early: after a request the
token windows held back, the next may catch up (the windows still hold every second and
minute under the limit; spacing only keeps the requests even)."""

BACK_OFF = 0.95
"""A learned rate after a 429: this share of the rate the service was refusing."""
RECOVER = 6.0
"""Seconds of being held back by a learned rate to climb back to the rate that was refused
(most of them near it); as long again takes it 5% past that rate, and the climb speeds up
from there, so that a limit that was raised is found too."""
SETTLE = 1.0
"""Seconds after a cut during which 429s are of the same burst: the service counts the
second before each request, which still holds requests sent at the old rate."""
HISTORY = 10.0
"""Seconds of a client's sends a :class:`RateLearner` keeps to measure rates from."""
_MIN_SPAN = 0.001  # seconds: a span to measure a rate over is never taken as shorter
PACE_LEAD = 0.25
"""Seconds ahead, at most, that a learned pace hands out slots: a rate it learns then
applies within this time, not after every request already queued behind the old one."""

Dimension = Literal["requests", "tokens"]


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
    """The slots of the last ``span`` seconds (``base`` stretched by the margin), whose
    weight (1 each, or their tokens, read live so that a correction counts at once) is
    kept under ``capacity``; in time order."""

    def __init__(self, base: float, capacity: float, tokens: bool) -> None:
        self.base = base
        self.span = base
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
    - ``headroom``: the share of each limit left unused at least (default 2%), for the
      jitter between clocks; a 429 that comes anyway leaves more for a while.

    Either limit may be left out (``None``), not both. A 429 that comes anyway cools
    every client sharing the limiter down (:meth:`cool_down`).
    """

    _token_slack = TOKEN_SLACK

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
        self._windows: list[_Window] = []
        if requests_per_minute is not None:
            per_second = requests_per_minute / 60
            if per_second >= 1:
                # a whole number of requests per span, as the service counts a fractional
                # rate: 16.7 a second is 17 in 1.02 s (flooring it to 16 would waste 4%)
                capacity = round(per_second)
                self._windows.append(_Window(capacity / per_second, capacity, tokens=False))
            self._windows.append(_Window(60.0, requests_per_minute, tokens=False))
        if tokens_per_minute is not None:
            self._windows.append(_Window(1.0, tokens_per_minute / 60, tokens=True))
            self._windows.append(_Window(60.0, tokens_per_minute, tokens=True))
        self._start_spacing()
        self._margin = self.headroom
        self._margin_at = -math.inf  # when the margin was last eased
        self._widened_at = -math.inf  # when a 429 last widened it
        self._set_margin(self.headroom)

    def _start_spacing(self) -> None:
        self._interval = 0.0  # seconds between requests (0: not spaced by count)
        self._token_rate = 0.0  # tokens a second (0: not spaced by tokens)
        self._next_request = -math.inf  # the earliest the next request may go (spacing)
        self._next_tokens = -math.inf  # the same by tokens (less the slack)
        self._last = -math.inf  # the latest slot handed out: slots go in order
        self._cool_until = -math.inf
        self._queue: deque[Slot] = deque()  # the slots handed out and not yet due, in order

    def __repr__(self) -> str:
        return (
            f"RateLimit(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r})"
        )

    @property
    def margin(self) -> float:
        """The share of each limit left unused now: ``headroom``, or more for a while after
        a 429 came anyway."""
        with self._lock:
            self._ease(self._clock())
            return self._margin

    def reserve(self, tokens: int = 0) -> Slot:
        """Take the next slot for a request of ``tokens`` estimated tokens; it may be sent
        once :meth:`remaining` says 0. Never blocks."""
        tokens = max(0, int(tokens))
        with self._lock:
            return self._reserve(self._clock(), tokens)

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
        """A 429 came anyway: no slot starts before ``seconds`` from now, and the limiter
        leaves more room for a while. Slots already handed out and not yet due move later
        together, spaced as the wider margin spaces them."""
        with self._lock:
            now = self._clock()
            if self._widen(now):
                self._respace(self._pending(now))
            self._cool(now, seconds)

    # --- under the lock ---

    def _reserve(self, now: float, tokens: int) -> Slot:
        self._ease(now)
        for window in self._windows:
            window.prune(now)
        while self._queue and self._queue[0].time <= now:
            self._queue.popleft()
        requests_at = self._next_request - (self.burst - 1) * self._interval
        tokens_at = self._next_tokens - self._token_slack
        at = max(now, self._last, self._cool_until)
        held: Dimension | None = None  # the limit that set the slot's time, if one did
        if max(requests_at, tokens_at) > at:
            held = "tokens" if tokens_at >= requests_at else "requests"
            at = max(requests_at, tokens_at)
        # each window may push it later, and a later time may matter to another window
        moved = True
        while moved:
            moved = False
            for window in self._windows:
                fits = window.earliest(at, tokens if window.tokens else 1)
                if fits > at:
                    at, moved = fits, True
                    held = "tokens" if window.tokens else "requests"
        slot = self._slot(at, tokens, held if at > now + _DUST else None)
        for window in self._windows:
            window.add(slot)
        self._queue.append(slot)
        self._last = at
        if self._interval:
            self._next_request = max(self._next_request, at) + self._interval
        if self._token_rate:
            self._next_tokens = at + tokens / self._token_rate
        return slot

    def _slot(self, at: float, tokens: int, held: Dimension | None) -> Slot:
        """The slot handed out at ``at``; ``held``: the spacing that set its time, if any."""
        return Slot(at, tokens)

    def _pending(self, now: float) -> list[Slot]:
        """The slots handed out and not yet due, in order."""
        return [slot for slot in self._queue if slot.time > now]

    def _cool(self, now: float, seconds: float) -> None:
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

    def _respace(self, pending: list[Slot]) -> None:
        """Space the slots not yet due as the current rates space them (only ever later)."""
        previous: Slot | None = None
        for slot in pending:
            if previous is not None:
                gap = max(
                    self._interval,
                    previous.tokens / self._token_rate if self._token_rate else 0.0,
                )
                slot.time = max(slot.time, previous.time + gap)
            previous = slot
        if previous is not None:
            self._last = max(self._last, previous.time)
            if self._interval:
                self._next_request = max(self._next_request, previous.time + self._interval)
            if self._token_rate:
                self._next_tokens = max(
                    self._next_tokens, previous.time + previous.tokens / self._token_rate
                )

    def _set_margin(self, margin: float) -> None:
        """Leave ``margin`` of each limit unused: the spacing and the windows' spans."""
        self._margin = margin
        keep = 1.0 - margin
        if self.requests_per_minute is not None:
            self._interval = 60.0 / (self.requests_per_minute * keep)
        if self.tokens_per_minute is not None:
            self._token_rate = self.tokens_per_minute * keep / 60
        for window in self._windows:
            window.span = window.base / keep  # windows a little longer than the service's

    def _widen(self, now: float) -> bool:
        """A 429 came anyway: leave more room (once a second); whether the margin grew."""
        self._ease(now)
        if now - self._widened_at < 1.0 or self._margin >= MARGIN_MOST:
            return False
        self._widened_at = now
        self._margin_at = now
        self._set_margin(min(MARGIN_MOST, self._margin + MARGIN_STEP))
        return True

    def _ease(self, now: float) -> None:
        """Narrow the margin back toward ``headroom`` as time passes without 429s."""
        if self._margin <= self.headroom:
            return
        eased = self._margin - MARGIN_EASE * max(0.0, now - self._margin_at)
        self._margin_at = now
        self._set_margin(max(self.headroom, eased))

    # --- waiting, for code of your own ---

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


# --- a limit learned from 429s ----------------------------------------------------------------


class PacedSlot(Slot):
    """A slot of a learned pace; ``held`` names the rate that made it wait, if one did (a
    request that passes after being held is evidence that the rate may climb)."""

    __slots__ = ("held",)

    def __init__(self, time: float, tokens: int, held: Dimension | None) -> None:
        super().__init__(time, tokens)
        self.held = held


class Pace(RateLimit):
    """The pace a :class:`RateLearner` sets: requests and tokens spaced evenly at the rates
    learned so far, with no windows and no margin of its own (the learner's cuts are the
    margin). Private to one client."""

    _token_slack = 0.0  # no windows to hold the seconds: the spacing is all there is

    def __init__(self, clock: Callable[[], float]) -> None:  # no limits to check
        self.requests_per_minute = None
        self.tokens_per_minute = None
        self.burst = 1
        self.headroom = 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._windows = []
        self._start_spacing()
        self._margin = 0.0
        self._margin_at = self._widened_at = -math.inf

    def __repr__(self) -> str:
        per_second = 1 / self._interval if self._interval else None
        return f"Pace(requests_per_second={per_second!r}, tokens_per_second={self._token_rate!r})"

    def set_rates(self, requests: float | None, tokens: float | None, respace: bool) -> None:
        """Pace at ``requests`` and ``tokens`` a second (``None``: not paced by that);
        ``respace``: slow the slots already handed out to the new rates."""
        with self._lock:
            self._interval = 1.0 / requests if requests else 0.0
            self._token_rate = tokens or 0.0
            if respace:
                self._respace(self._pending(self._clock()))

    def cool_down(self, seconds: float) -> None:
        """No slot starts before ``seconds`` from now (the learner has cut the rates)."""
        with self._lock:
            self._cool(self._clock(), seconds)

    def reserve_soon(self, tokens: int, lead: float = PACE_LEAD) -> Slot | float:
        """The next slot, if it is due within ``lead`` seconds; else the seconds to wait
        before asking again."""
        tokens = max(0, int(tokens))
        with self._lock:
            now = self._clock()
            free = max(self._last, self._cool_until, self._next_request, self._next_tokens)
            if free - now > lead:
                return free - now - lead
            return self._reserve(now, tokens)

    def _slot(self, at: float, tokens: int, held: Dimension | None) -> Slot:
        return PacedSlot(at, tokens, held)

    def _ease(self, now: float) -> None:
        return None

    def _widen(self, now: float) -> bool:
        return False


class Sent:
    """One attempt as a :class:`RateLearner` saw it go: when, its tokens (the estimate, then
    what its answer billed), whether it was refused, when it was answered (``done``), and
    which learned rate held it back before it went (``held``), if one did."""

    __slots__ = ("done", "held", "refused", "time", "tokens")

    def __init__(self, time: float, tokens: int, held: Dimension | None) -> None:
        self.time = time
        self.tokens = tokens
        self.refused = False
        self.done: float | None = None
        self.held = held


class _Learned:
    """One learned rate (requests or tokens a second): none until a 429 names it; then a
    cubic climb from :data:`BACK_OFF` of ``peak`` (the rate that was refused) back to it
    over :data:`RECOVER` seconds of being held back, and on past it; never above
    ``ceiling`` (the known limit, if there is one)."""

    def __init__(self, ceiling: float | None) -> None:
        self.ceiling = ceiling
        self.rate: float | None = None
        self.peak = 0.0
        self.climbed = 0.0  # seconds held back by this rate since the last cut
        self.grown_at = 0.0
        self.cut_at = -math.inf

    def settled(self, sent_at: float) -> bool:
        """Whether a request sent at ``sent_at`` went after the last cut had settled."""
        return sent_at >= self.cut_at + SETTLE

    def cut(self, refused_at: float, now: float) -> None:
        """A 429 at ``refused_at`` a second: back off below it and start climbing again."""
        self.peak = refused_at if self.ceiling is None else min(refused_at, self.ceiling)
        self.rate = BACK_OFF * self.peak
        self.climbed = 0.0
        self.grown_at = self.cut_at = now

    def lower(self, admitted: float) -> None:
        """A 429 of the last cut's burst, for a request sent at no learned pace: the service
        admitted ``admitted`` a second then; if that is less than the peak, aim lower (the
        refusals of a first burst narrow the rate down one by one)."""
        if self.rate is not None and admitted < self.peak:
            self.peak = admitted
            self.rate = min(self.rate, BACK_OFF * admitted)

    def grow(self, now: float) -> None:
        """A request held back by this rate passed: climb by the time since the last step
        (an idle spell counts as at most a second and a request's gap)."""
        if self.rate is None:
            return
        step = now - self.grown_at
        self.grown_at = now
        self.climbed += max(0.0, min(step, 1.0 + 1.0 / self.rate))
        rate = self.peak * (1.0 + (1.0 - BACK_OFF) * (self.climbed / RECOVER - 1.0) ** 3)
        self.rate = rate if self.ceiling is None else min(rate, self.ceiling)


class RateLearner:
    """What one client learns of a rate limit from its 429s; shared by its threads and event
    loops. ``known``: the :class:`RateLimit` the client was given, if any.

    Until a 429, it only notes when each attempt went (:meth:`sent`) and the client sends
    as it would without it. A 429 for requests or a surge then paces the client's requests
    (:attr:`pace`), and a 429 for tokens its tokens, starting at :data:`BACK_OFF` of what
    the service admitted in the second before; a later 429 of a request sent once the last
    cut has settled (:data:`SETTLE`) cuts it again, and requests that were held back and
    passed let it climb (:class:`_Learned`). Retry-After is honoured by cooling the pace
    down. With a known limit, a 429 for what it limits is its own to answer (its margin, its
    cool-down): the learner only takes surges and the limits it does not set, and never
    paces above a limit it does set.
    """

    def __init__(self, known: RateLimit | None = None) -> None:
        requests = getattr(known, "requests_per_minute", None)
        tokens = getattr(known, "tokens_per_minute", None)
        self._requests = _Learned(None if requests is None else requests / 60)
        self._tokens = _Learned(None if tokens is None else tokens / 60)
        self._known_requests = requests is not None
        self._known_tokens = tokens is not None
        self._history: deque[Sent] = deque()
        self._pace: Pace | None = None
        self._clock: Callable[[], float] = time.monotonic
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RateLearner(requests_per_second={self._requests.rate!r}, "
            f"tokens_per_second={self._tokens.rate!r})"
        )

    @property
    def pace(self) -> Pace | None:
        """The learned pace, once a 429 has set one (``None`` before: no pacing)."""
        return self._pace

    @property
    def requests_per_second(self) -> float | None:
        """The learned request rate (``None``: none learned)."""
        return self._requests.rate

    @property
    def tokens_per_second(self) -> float | None:
        """The learned token rate (``None``: none learned)."""
        return self._tokens.rate

    def sent(self, tokens: int, slot: Slot | None = None) -> Sent:
        """Note an attempt of ``tokens`` estimated tokens going now; ``slot``: its slot of
        :attr:`pace`, if it had one."""
        held = slot.held if isinstance(slot, PacedSlot) else None
        with self._lock:
            now = self._clock()
            record = Sent(now, max(0, int(tokens)), held)
            history = self._history
            history.append(record)
            while history[0].time <= now - HISTORY:
                history.popleft()
            return record

    def succeeded(self, record: Sent, tokens: int) -> None:
        """The attempt of ``record`` passed, billed ``tokens``."""
        with self._lock:
            record.tokens = max(0, int(tokens))
            record.done = self._clock()
            held, pace = record.held, self._pace
            if held is None or pace is None:
                return
            (self._tokens if held == "tokens" else self._requests).grow(self._clock())
            self._set_pace(pace, respace=False)

    def refused(self, record: Sent, limit: str, seconds: float, told: float | None = None) -> bool:
        """The attempt of ``record`` was refused with a 429 naming ``limit`` (``requests``,
        ``tokens`` or ``surge``), to be retried in ``seconds``; ``told``: the wait the
        service asked for, if it did. Returns whether the pace answers it (it was set or
        cut, and cooled down for ``seconds``); ``False`` when the known limit does, or when
        nothing admitted yet tells a rate to learn."""
        tokens = limit == "tokens"
        learned = self._tokens if tokens else self._requests
        with self._lock:
            record.refused = True
            if limit != "surge" and (self._known_tokens if tokens else self._known_requests):
                return False
            now = self._clock()
            admitted = self._admitted(tokens, told)
            held = record.held == ("tokens" if tokens else "requests")
            if learned.rate is None:
                if admitted is None:
                    return False
                learned.cut(admitted, now)
            elif learned.settled(record.time):
                # held back by the rate, the request went at it; else the client sent slower
                # than the rate allowed, and what the service admitted is the better measure
                rate = learned.rate
                learned.cut(rate if held or admitted is None else min(rate, admitted), now)
            elif not held and admitted is not None:
                learned.lower(admitted)
            if self._pace is None:
                self._pace = Pace(self._clock)
            self._set_pace(self._pace, respace=True)
            self._pace.cool_down(seconds)
            return True

    def _set_pace(self, pace: Pace, respace: bool) -> None:
        pace.set_rates(self._requests.rate, self._tokens.rate, respace)

    def _admitted(self, tokens: bool, told: float | None) -> float | None:
        """What the service admitted a second, ``None`` if nothing: ``n`` requests (or
        tokens) over the time from the earliest of them to when it admits more.

        Tokens: those billed by the answers of the last second (a tokens 429 comes with an
        answer, after requests sent later have gone). Requests: those sent in the second
        before the latest send and not refused so far (a requests 429 comes at once, so a
        burst counts whole, and a pause since does not dilute it). When the service said
        when it admits more (``told``, its Retry-After), that ends the span: a burst of 10
        admitted at once and "wait 0.99 s" is 10 a second, 4 admitted and "wait 0.01 s" is
        a limit on requests in flight, hundreds a second, 30 and "wait 59 s" a minute's.
        Else the span is the second (the service's per-second count). With none in the last
        second, the whole history counts, over its length."""
        if not self._history:
            return None
        if tokens:
            end = self._clock()
            recent = [
                (record.done, record.tokens)
                for record in self._history
                if record.done is not None and record.done > end - 1.0
            ]
        else:
            end = self._history[-1].time
            recent = [
                (record.time, 1)
                for record in _since(self._history, end - 1.0)
                if not record.refused and record.time <= end
            ]
        total = sum(weight for _, weight in recent)
        if total > 0:
            if told is None:
                return float(total)
            earliest = min(when for when, _ in recent)
            return total / max(end - earliest + told, _MIN_SPAN)
        if tokens:
            older = sum(r.tokens for r in self._history if r.done is not None)
        else:
            older = sum(1 for r in self._history if not r.refused)
        return older / HISTORY if older > 0 else None


def _since(history: deque[Sent], start: float) -> Iterable[Sent]:
    """The records sent after ``start`` (history is in time order: read from the end)."""
    found: list[Sent] = []
    for record in reversed(history):
        if record.time <= start:
            break
        found.append(record)
    return found


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )
