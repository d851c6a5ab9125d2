"""Load and faults: admission (concurrency and rate windows), random faults, the fault header.

All of it runs on the server's event loop thread, so plain counters need no lock.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, replace

from ._config import EmulatorConfig

FAULT_HEADER = "x-emulator-fault"
_FLAGS = ("drop", "cut", "malformed", "truncate", "wrong_count")
# Fault-header counters (``times=N``) remembered at most; the oldest are forgotten first.
_MAX_COUNTERS = 10_000


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
        # Sliding windows of admission times: (times, span in seconds, requests allowed per span).
        self._windows: list[tuple[deque[float], float, int]] = []
        if config.rpm is not None:
            self._windows.append((deque(), 60.0, config.rpm))
        if config.rps is not None:
            # A fractional rate (0.5/s) is one request per longer span (2 s).
            capacity = max(1, round(config.rps))
            self._windows.append((deque(), capacity / config.rps, capacity))
        self._counters: dict[str, int] = {}
        self.stats = Stats()

    def admit(self, now: float | None = None) -> float | None:
        """Take a slot for a request: ``None`` when admitted, else seconds to suggest waiting."""
        config = self.config
        now = time.monotonic() if now is None else now
        if config.max_concurrency is not None and self.in_flight >= config.max_concurrency:
            return config.retry_after
        for window, span, capacity in self._windows:
            while window and window[0] <= now - span:
                window.popleft()
            if len(window) >= capacity:
                return window[0] + span - now
        for window, _, _ in self._windows:
            window.append(now)
        self.in_flight += 1
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
