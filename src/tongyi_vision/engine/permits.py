"""How many requests may be in flight: one adaptive limit, a thread twin and an asyncio twin.

A request takes a *permit* before its body is built and gives it back when it
ends or starts waiting out a backoff. :class:`PermitState` holds every decision
and does no locking; :class:`ThreadPermits` and :class:`AsyncPermits` are the
same few lines around a ``threading.Condition`` and an ``asyncio.Condition``.
One set of permits belongs to a client, so concurrent calls on it share
``max_concurrency`` instead of each taking all of it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

Verdict = Literal["succeeded", "throttled", "other"]
"""How the attempt that held a permit ended: the limit adapts to it."""


class PermitState:
    """The limit and who holds a permit; no locking (each twin calls it under its lock).

    The limit is halved on a 429 (once per burst: only by a request sent since
    the last cut) and raised by one after as many successes in a row as the
    current limit, up to ``maximum``. Requests coming back from a backoff go
    before new ones, so a lowered limit also meters returning retries.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.returning = 0
        self.epoch = 0
        self._successes = 0

    def queue(self, returning: bool, step: int = 1) -> None:
        """Count a request back from a backoff as waiting (``step=-1`` takes it back)."""
        if returning:
            self.returning += step

    def ready(self, returning: bool) -> bool:
        return self.in_flight < self.limit and (returning or self.returning == 0)

    def take(self, returning: bool) -> int:
        """Hand out a permit; returns the epoch of the limit it was taken under."""
        self.queue(returning, -1)
        self.in_flight += 1
        return self.epoch

    def give_back(self, epoch: int, verdict: Verdict) -> None:
        self.in_flight -= 1
        if verdict == "throttled" and epoch == self.epoch:
            self.limit = max(1, self.limit // 2)
            self.epoch += 1
            self._successes = 0
        elif verdict == "succeeded" and self.limit < self.maximum:
            self._successes += 1
            if self._successes >= self.limit:
                self.limit += 1
                self._successes = 0


class ThreadPermits:
    """:class:`PermitState` for worker threads."""

    def __init__(self, maximum: int) -> None:
        self.state = PermitState(maximum)
        self._condition = threading.Condition()

    def acquire(self, returning: bool = False) -> int:
        with self._condition:
            self.state.queue(returning)
            try:
                self._condition.wait_for(lambda: self.state.ready(returning))
            except BaseException:
                self.state.queue(returning, -1)
                self._condition.notify_all()
                raise
            return self.state.take(returning)

    def release(self, epoch: int, verdict: Verdict) -> None:
        with self._condition:
            self.state.give_back(epoch, verdict)
            self._condition.notify_all()


class AsyncPermits:
    """:class:`PermitState` for asyncio tasks; bound to the event loop that first uses it."""

    def __init__(self, maximum: int) -> None:
        self.state = PermitState(maximum)
        self._condition = asyncio.Condition()

    async def acquire(self, returning: bool = False) -> int:
        async with self._condition:
            self.state.queue(returning)
            try:
                await self._condition.wait_for(lambda: self.state.ready(returning))
            except BaseException:
                self.state.queue(returning, -1)
                self._condition.notify_all()
                raise
            return self.state.take(returning)

    async def release(self, epoch: int, verdict: Verdict) -> None:
        async with self._condition:
            self.state.give_back(epoch, verdict)
            self._condition.notify_all()
