"""How much may be in flight: the adaptive limits, a thread twin and an asyncio twin.

A request takes a *permit* before its body is built and gives it back when it
ends or starts waiting out a backoff. Just before it is sent it also reserves
its estimated tokens (:meth:`PermitState.admit`), which is where the token
limits hold it back. :class:`PermitState` holds every decision and does no
locking; :class:`ThreadPermits` and :class:`AsyncPermits` are the same few
lines around a ``threading.Condition`` and an ``asyncio.Condition``. One set
of permits belongs to a client, so concurrent calls on it share its limits
instead of each taking all of them.

Each kind of 429 backs off on what it names (``RateLimitError.limit``):

- ``requests``: the request limit is halved (``"throttled"``);
- ``surge``: the same, and the requests refused in the same burst come back
  spread out instead of together;
- ``tokens``: the request limit stays; the token budget is halved and every
  request of the client waits until the refusal's ``Retry-After`` (or backoff)
  has passed (:class:`TokenBudget`).

That is how a client backs off while nothing meters its rate. Once something
does (a :class:`~.ratelimit.RateLimit` it was given, or the pace its
:class:`~.ratelimit.RateLearner` has learned), a 429 is *paced*: the limiter slows
down, so the permits leave concurrency and the token budget alone and only pause
every request of the client until the refusal's wait is over (a cool-down).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["succeeded", "throttled", "surge", "tokens", "other"]
"""How the attempt that held a permit ended, and the limits adapt to it: ``throttled``
(a 429 for requests), ``surge`` (the surge guard's 429, or one that does not say) and
``tokens`` (a 429 for tokens) each back off on their own limit."""

SURGE_SPREAD = 1.0
"""Seconds, at least, over which the retries of one surge burst are spread: the surge
guard counts the requests of each second."""


@dataclass(frozen=True)
class Tokens:
    """Tokens a request reserved for one attempt, and the budget cut they were taken under."""

    count: int
    epoch: int


@dataclass(frozen=True)
class Grant:
    """What :meth:`PermitState.admit` gives: the reserved ``tokens``, or else (``tokens``
    is ``None``) the ``wait`` of the token pause numbered ``pause`` still to sit out."""

    tokens: Tokens | None
    wait: float = 0.0
    pause: int = 0


@dataclass(frozen=True)
class Backoff:
    """What giving a permit back for a backoff adds to it: ``spread`` seconds more (a
    surge), and the number of the token pause it started (``None``: it started none)."""

    spread: float = 0.0
    pause: int | None = None


class TokenBudget:
    """Tokens in flight, the budget they must fit in, and the pause after a tokens 429.

    No locking: :class:`PermitState`'s twins call it under their lock. There is no
    budget until the service refuses a request for its tokens; then it is half of
    the tokens that were in flight (once per burst: only by a request reserved since
    the last cut), and after as many tokens succeeded as the budget it grows by the
    average request. A request larger than the budget goes when nothing else is in
    flight. The refusal also *pauses* the client: no request is sent until its wait
    has passed; a request that has waited out (or started) a pause is not held by it
    again. A token bucket can keep its state here and pause the same gate.
    """

    def __init__(self) -> None:
        self.limit: int | None = None
        self.in_flight = 0
        self.epoch = 0
        self.paused_until = 0.0
        self.pauses = 0
        self._succeeded_tokens = 0
        self._succeeded_requests = 0

    def wait(self, passed: int) -> float:
        """Seconds still to wait for the pause (0: none holds a request that has waited out
        pause number ``passed``)."""
        if self.pauses == passed:
            return 0.0
        return max(0.0, self.paused_until - time.monotonic())

    def fits(self, tokens: int) -> bool:
        return self.limit is None or self.in_flight == 0 or self.in_flight + tokens <= self.limit

    def take(self, tokens: int) -> Tokens:
        self.in_flight += tokens
        return Tokens(tokens, self.epoch)

    def pause(self, seconds: float) -> int:
        """Hold every request back for ``seconds`` from now (a later end already set stays);
        returns the pause's number."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)
        self.pauses += 1
        return self.pauses

    def give_back(self, held: Tokens | None, verdict: Verdict, seconds: float) -> int | None:
        """Return a request's tokens; a ``tokens`` verdict cuts the budget and pauses for
        ``seconds`` (the number of that pause is returned)."""
        pause = None
        if verdict == "tokens":
            if held is None or held.epoch == self.epoch:
                current = self.in_flight if self.limit is None else min(self.limit, self.in_flight)
                self.limit = max(1, current // 2)
                self.epoch += 1
                self._succeeded_tokens = self._succeeded_requests = 0
            pause = self.pause(seconds)
        elif verdict == "succeeded" and held is not None and self.limit is not None:
            self._succeeded_tokens += held.count
            self._succeeded_requests += 1
            if self._succeeded_tokens >= self.limit:
                self.limit += max(1, self._succeeded_tokens // self._succeeded_requests)
                self._succeeded_tokens = self._succeeded_requests = 0
        if held is not None:
            self.in_flight -= held.count
        return pause


class PermitState:
    """The request limit, who holds a permit, and the token budget; no locking (each twin
    calls it under its lock).

    The request limit is halved on a 429 for requests or a surge (once per burst:
    only by a request sent since the last cut) and raised by one after as many
    successes in a row as the current limit, up to ``maximum``; a 429 for tokens
    leaves it alone. Requests coming back from a backoff go before new ones, so a
    lowered limit also meters returning retries; after a surge, the other requests
    of the burst also wait a share of :data:`SURGE_SPREAD` each, so that they come
    back about ``limit`` at a time. A *paced* 429 (a limiter meters the rate and has
    slowed down) changes none of that: it only pauses the client
    (:meth:`TokenBudget.pause`) until the refused request's wait is over.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.returning = 0
        self.epoch = 0
        self.tokens = TokenBudget()
        self._successes = 0
        self._surged = 0

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

    def admit(self, tokens: int, passed: int) -> Grant | None:
        """Reserve ``tokens`` for a request about to be sent; a :class:`Grant` without tokens
        when a token pause holds it back; ``None`` when they do not fit yet (wait for a
        request to end). ``passed``: the last pause the request has waited out."""
        wait = self.tokens.wait(passed)
        if wait > 0:
            return Grant(None, wait, self.tokens.pauses)
        if not self.tokens.fits(tokens):
            return None
        return Grant(self.tokens.take(tokens), pause=self.tokens.pauses)

    def give_back(
        self,
        epoch: int,
        verdict: Verdict,
        tokens: Tokens | None = None,
        seconds: float = 0.0,
        paced: bool = False,
    ) -> Backoff:
        """End a permit (and its tokens) with ``verdict``; ``seconds``: the backoff the
        request now waits, when it gives the permit back for one; ``paced``: a limiter
        that meters the rate has taken the 429 in."""
        self.in_flight -= 1
        if paced and verdict in ("throttled", "surge", "tokens"):
            self.tokens.give_back(tokens, "other", 0.0)
            return Backoff(0.0, self.tokens.pause(seconds))
        spread = 0.0
        if verdict in ("throttled", "surge"):
            if epoch == self.epoch:
                self.limit = max(1, self.limit // 2)
                self.epoch += 1
                self._successes = 0
                self._surged = 0
            elif verdict == "surge":
                # refused in the same burst as the one that cut the limit
                self._surged += 1
                spread = self._surged * max(seconds, SURGE_SPREAD) / self.limit
        elif verdict == "succeeded" and self.limit < self.maximum:
            self._successes += 1
            if self._successes >= self.limit:
                self.limit += 1
                self._successes = 0
        pause = self.tokens.give_back(tokens, verdict, seconds)
        return Backoff(spread, pause)


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

    def admit(self, tokens: int, passed: int) -> Grant:
        with self._condition:
            while (grant := self.state.admit(tokens, passed)) is None:
                self._condition.wait()
            return grant

    def release(
        self,
        epoch: int,
        verdict: Verdict,
        tokens: Tokens | None = None,
        seconds: float = 0.0,
        paced: bool = False,
    ) -> Backoff:
        with self._condition:
            backoff = self.state.give_back(epoch, verdict, tokens, seconds, paced)
            self._condition.notify_all()
            return backoff


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

    async def admit(self, tokens: int, passed: int) -> Grant:
        async with self._condition:
            while (grant := self.state.admit(tokens, passed)) is None:
                await self._condition.wait()
            return grant

    async def release(
        self,
        epoch: int,
        verdict: Verdict,
        tokens: Tokens | None = None,
        seconds: float = 0.0,
        paced: bool = False,
    ) -> Backoff:
        async with self._condition:
            backoff = self.state.give_back(epoch, verdict, tokens, seconds, paced)
            self._condition.notify_all()
            return backoff
