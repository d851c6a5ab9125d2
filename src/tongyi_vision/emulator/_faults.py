"""Load and faults: admission (concurrency, rate windows, the surge guard, token windows),
random faults, the fault header.

All of it runs on the server's event loop thread, so plain counters need no lock.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace

from ._config import EmulatorConfig

FAULT_HEADER = "x-emulator-fault"
_FLAGS = ("drop", "cut", "malformed", "truncate", "wrong_count")
# Fault-header counters (``times=N``) remembered at most; the oldest are forgotten first.
_MAX_COUNTERS = 10_000
# The surge guard compares the last second with the average of the minute before it, taken
# as at least this many requests per second, so a quiet key may start at --surge per second.
SURGE_WINDOW = 60.0
SURGE_FLOOR = 1.0
# The service's 429 codes (contract.md, "Rate limits").
REQUESTS_CODE = "Throttling.RateQuota"
TOKENS_CODE = "Throttling.AllocationQuota"
SURGE_CODE = "Throttling"


@dataclass(frozen=True)
class Throttled:
    """Why a request is refused with 429: its native ``code``, a message in the service's
    manner, and the seconds to suggest waiting (``Retry-After``)."""

    code: str
    message: str
    retry_after: float


@dataclass
class _Window:
    """A sliding window of admissions: their times and weights (1 per request, or tokens)."""

    span: float
    capacity: float
    label: str
    entries: deque[tuple[float, float]] = field(default_factory=deque)
    used: float = 0.0

    def prune(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - self.span:
            self.used -= self.entries.popleft()[1]
        if not self.entries:
            self.used = 0.0  # no float dust left behind

    def wait(self, weight: float, now: float) -> float | None:
        """``None`` if ``weight`` more fits now, else seconds until it does. A weight larger
        than the whole window fits an empty window, so it is slowed, never refused forever."""
        self.prune(now)
        if not self.entries or self.used + weight <= self.capacity:
            return None
        left = self.used
        for time_, amount in self.entries:
            left -= amount
            if left + weight <= self.capacity:
                return max(0.0, time_ + self.span - now)
        # Larger than the whole window: it fits once the window is empty.
        return max(0.0, self.entries[-1][0] + self.span - now)

    def add(self, weight: float, now: float) -> None:
        self.entries.append((now, weight))
        self.used += weight


@dataclass(frozen=True)
class Fault:
    """What to do to one request instead of (or on top of) answering it normally.

    ``status``: answer with this error status (``code`` overrides the native
    code, ``retry_after`` the 429 hint); ``drop``: close the connection without
    answering; ``cut``: send the headers and half the body, then close;
    ``malformed``: a 200 whose body is not JSON; ``truncate``: a 200 whose JSON
    is cut short; ``wrong_count``: a 200 with one vector too few (or too many
    for a single part); ``latency``: seconds to wait first; ``times``: apply
    only to the first N requests carrying the same header value.
    """

    status: int | None = None
    code: str | None = None
    retry_after: float | None = None
    drop: bool = False
    cut: bool = False
    malformed: bool = False
    truncate: bool = False
    wrong_count: bool = False
    latency: float | None = None
    times: int | None = None

    @property
    def breaks_answer(self) -> bool:
        """True when a 200 answer is damaged on its way out."""
        return self.malformed or self.truncate or self.wrong_count or self.cut


def parse_fault_header(value: str) -> Fault:
    """Parse ``X-Emulator-Fault``: directives separated by ``;`` (or ``,``).

    ``"status=429;retry_after=0.5;times=2"`` throttles the first two requests
    carrying it, suggesting half a second's wait. An ``id=...`` directive is
    ignored: it makes header values distinct, so ``times`` counts separately.
    Raises ``ValueError`` for anything else.
    """
    fault = Fault()
    for raw in value.replace(",", ";").split(";"):
        directive = raw.strip()
        if not directive:
            continue
        name, sep, arg = (s.strip() for s in directive.partition("="))
        name = name.lower().replace("-", "_")
        if name in _FLAGS and not sep:
            fault = _flag(fault, name)
        elif name == "status" and sep:
            status = int(arg)
            if not 400 <= status <= 599:
                raise ValueError(f"status must be an error status in [400, 599], not {status}")
            fault = replace(fault, status=status)
        elif name == "code" and sep and arg:
            fault = replace(fault, code=arg)
        elif name in ("retry_after", "latency") and sep:
            seconds = float(arg)
            if not (math.isfinite(seconds) and 0 <= seconds <= 60):
                raise ValueError(f"{name} must be seconds in [0, 60], not {arg}")
            if name == "latency":
                fault = replace(fault, latency=seconds)
            else:
                fault = replace(fault, retry_after=seconds)
        elif name == "times" and sep:
            times = int(arg)
            if times < 0:
                raise ValueError(f"times must be >= 0, not {times}")
            fault = replace(fault, times=times)
        elif name == "id" and sep:
            continue
        else:
            raise ValueError(f"unknown directive {directive!r}")
    return fault


@dataclass
class Stats:
    """Counters served at ``GET /stats``: what the emulator answered and billed."""

    requests: int = 0
    succeeded: int = 0
    billed_parts: int = 0
    billed_tokens: int = 0
    throttled: int = 0
    failed: int = 0
    dropped: int = 0
    damaged: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class LoadState:
    """The emulator's mutable state: admission windows, fault draws, counters."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        # Faults and latency draw from separate generators, so turning latency on does not
        # change which requests fail for a given seed.
        self._faults = random.Random(f"faults:{config.seed}")
        self._latency = random.Random(f"latency:{config.seed}")
        self.in_flight = 0
        # Request windows (one per request admitted) and token windows (tokens billed).
        self._requests: list[_Window] = []
        self._tokens: list[_Window] = []
        if config.rpm is not None:
            self._requests.append(_Window(60.0, config.rpm, f"{config.rpm} requests a minute"))
            # The service enforces a 60th of the minute's allowance per second; below 60 a
            # minute that share is under one request, and the minute alone counts.
            if config.rpm >= 60:
                self._requests.append(_per_second(config.rpm / 60))
        if config.rps is not None:
            self._requests.append(_per_second(config.rps))
        if config.tpm is not None:
            self._tokens.append(_Window(60.0, config.tpm, f"{config.tpm:,} tokens a minute"))
            per_second = config.tpm / 60
            self._tokens.append(_Window(1.0, per_second, f"{per_second:,.0f} tokens a second"))
        # Admission times for the surge guard: of the last second, and of the minute before.
        self._last_second: deque[float] = deque()
        self._before: deque[float] = deque()
        self._counters: dict[str, int] = {}
        self.stats = Stats()

    def admit(self, now: float | None = None) -> float | None:
        """Take a slot for a request: ``None`` when admitted, else seconds to suggest waiting
        (:meth:`admission` says why)."""
        refused = self.admission(now)
        return None if refused is None else refused.retry_after

    def admission(self, now: float | None = None) -> Throttled | None:
        """Take a slot for a request: ``None`` when admitted, else why it is throttled.

        Concurrency first, then the surge guard (it fires below the rate limits), then the
        request windows; a refused request takes no place in any window.
        """
        config = self.config
        now = time.monotonic() if now is None else now
        if config.max_concurrency is not None and self.in_flight >= config.max_concurrency:
            return Throttled(
                REQUESTS_CODE,
                f"Requests rate limit exceeded: more than {config.max_concurrency} requests "
                "in flight; please try again later.",
                config.retry_after,
            )
        if config.surge is not None:
            surge = self._surge(config.surge, now)
            if surge is not None:
                return surge
        for window in self._requests:
            wait = window.wait(1, now)
            if wait is not None:
                return Throttled(
                    REQUESTS_CODE,
                    f"Requests rate limit exceeded: more than {window.label}; "
                    "please try again later.",
                    wait,
                )
        for window in self._requests:
            window.add(1, now)
        if config.surge is not None:
            self._last_second.append(now)
        self.in_flight += 1
        return None

    def _surge(self, factor: float, now: float) -> Throttled | None:
        # Two queues, so each admission is looked at a bounded number of times: those of the
        # last second, and those of the SURGE_WINDOW seconds before it.
        second, before = self._last_second, self._before
        while second and second[0] <= now - 1.0:
            before.append(second.popleft())
        while before and before[0] <= now - 1.0 - SURGE_WINDOW:
            before.popleft()
        average = len(before) / SURGE_WINDOW
        if len(second) + 1 <= factor * max(SURGE_FLOOR, average):
            return None
        return Throttled(
            SURGE_CODE,
            f"Request rate increased too quickly: {len(second)} requests in the last second "
            f"against {average:.2f} a second over the minute before; ramp up more gradually, "
            "then try again.",
            # The second's oldest request leaves it first: that is when one more may fit.
            max(0.0, second[0] + 1.0 - now),
        )

    def take_tokens(self, tokens: int, now: float | None = None) -> Throttled | None:
        """Bill ``tokens`` to the token windows: ``None`` when they fit, else why not (the
        request is then not billed)."""
        now = time.monotonic() if now is None else now
        for window in self._tokens:
            wait = window.wait(tokens, now)
            if wait is not None:
                return Throttled(
                    TOKENS_CODE,
                    f"Allocated quota exceeded: more than {window.label} (this request "
                    f"is {tokens:,}); please try again later.",
                    wait,
                )
        for window in self._tokens:
            window.add(tokens, now)
        return None

    def release(self) -> None:
        self.in_flight -= 1

    def latency(self) -> float:
        low, high = self.config.latency
        return low if high == low else self._latency.uniform(low, high)

    def random_fault(self) -> Fault | None:
        """Draw this request's random fault from the configured rates (one draw per request)."""
        config = self.config
        draw = self._faults.random()
        pick = self._faults.random()
        for rate, fault in (
            (config.fail_rate, Fault(status=500 if pick < 0.5 else 503)),
            (config.throttle_rate, Fault(status=429)),
            (config.drop_rate, Fault(drop=True)),
            (config.malformed_rate, _damage(pick)),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return None

    def header_fault(self, value: str) -> Fault | None:
        """The fault a header asks for, or ``None`` once its ``times`` are used up."""
        fault = parse_fault_header(value)
        if fault.times is None:
            return fault
        key = value.strip()
        used = self._counters.pop(key, 0)
        if len(self._counters) >= _MAX_COUNTERS:
            del self._counters[next(iter(self._counters))]
        self._counters[key] = used + 1
        return fault if used < fault.times else None


def _per_second(rate: float) -> _Window:
    """A window of ``rate`` requests a second; a fractional rate (0.5/s) is a whole number
    of requests per longer span (one per 2 s), 1.5/s is 2 per 1.33 s."""
    capacity = max(1, round(rate))
    return _Window(capacity / rate, capacity, f"{rate:g} requests a second")


def _flag(fault: Fault, name: str) -> Fault:
    return replace(
        fault,
        drop=fault.drop or name == "drop",
        cut=fault.cut or name == "cut",
        malformed=fault.malformed or name == "malformed",
        truncate=fault.truncate or name == "truncate",
        wrong_count=fault.wrong_count or name == "wrong_count",
    )


def _damage(pick: float) -> Fault:
    if pick < 0.25:
        return Fault(malformed=True)
    if pick < 0.5:
        return Fault(truncate=True)
    if pick < 0.75:
        return Fault(wrong_count=True)
    return Fault(cut=True)
