"""Running a call's requests on worker threads (:class:`Client`) or asyncio tasks
(:class:`AsyncClient`).

What a worker does is written once, as the generator :func:`worker`: take a
permit, take a batch, run the batch's flow of effects (:mod:`.scheduler`),
reserve the request's estimated tokens before each attempt is sent (waiting out
a token pause without a permit) and, with a :class:`~.ratelimit.RateLimit`, wait for
the request's slot (holding its permit, so that no more requests wait for slots than may
be in flight), give the permit back while a backoff is waited
out and take one again (ahead of new requests) when it is over, and give it back
at the end, also when the worker is interrupted. It yields *operations*; the two
drivers below only perform them, each in its own way (a blocking call, an
awaited one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from ..wire.errors import InputError
from .permits import AsyncPermits, ThreadPermits, Tokens, Verdict
from .planner import Batch
from .ratelimit import RateLimit, Slot
from .scheduler import Call, Load, Send, Sleep


@dataclass(frozen=True)
class Acquire:
    """Take a permit (``returning``: a request back from a backoff, served first)."""

    returning: bool = False


@dataclass(frozen=True)
class Admit:
    """Reserve ``tokens`` before a request is sent; ``passed``: the last token pause the
    worker has waited out. Answered with a :class:`~.permits.Grant`."""

    tokens: int
    passed: int


@dataclass(frozen=True)
class Release:
    """Give a permit back, saying how its attempt ended, with the tokens it reserved and
    the backoff it now waits (``seconds``). Answered with a :class:`~.permits.Backoff`."""

    epoch: int
    verdict: Verdict
    tokens: Tokens | None = None
    seconds: float = 0.0


Operation = Acquire | Admit | Release | Load | Send | Sleep
Worker = Generator[Operation, Any, None]


@dataclass
class _Place:
    """What a worker holds: a permit of ``epoch`` while ``held``, the tokens reserved for
    the attempt in flight, the last token pause it has waited out, and the rate limit's
    slot of the attempt in flight."""

    epoch: int
    held: bool = True
    tokens: Tokens | None = None
    passed: int = 0
    slot: Slot | None = None


def worker(call: Call, limiter: RateLimit | None = None) -> Worker:
    """One worker of ``call``, as the operations a driver performs; every error of an
    operation is thrown back in here, where the flow of the request decides what it means.
    ``limiter`` (never blocking) gives each attempt its slot and hears of its 429s."""
    passed = 0
    try:
        while True:
            epoch = yield Acquire()
            batch = call.take()
            if batch is None:
                yield Release(epoch, "other")  # no batch left for the permit just taken
                return
            place = _Place(epoch, passed=passed)
            flow = call.run_batch(batch)
            verdict: Verdict = "other"
            try:
                answer: Any = None
                error: BaseException | None = None
                while True:
                    try:
                        effect = flow.throw(error) if error is not None else flow.send(answer)
                    except StopIteration as done:
                        verdict = done.value
                        break
                    answer, error = None, None
                    if isinstance(effect, Sleep):
                        if limiter is not None and place.slot is not None:
                            _refused(limiter, place, effect)
                        yield from _step_out(place, _verdict_of(effect), effect.seconds)
                        continue
                    if isinstance(effect, Send):
                        if not (yield from _admitted(call, batch, place)):
                            break  # the call failed or was stopped while this one waited
                        if limiter is not None:
                            yield from _slotted(limiter, batch, place)
                    try:
                        answer = yield effect
                    except (InputError, httpx.HTTPError) as exc:
                        error = exc
            finally:
                flow.close()
                passed = place.passed
                if limiter is not None and place.slot is not None and verdict == "succeeded":
                    billed = call.take_billed(batch)
                    if billed is not None:
                        limiter.settle(place.slot, billed)
                if place.held:
                    yield Release(place.epoch, verdict, place.tokens)
    except BaseException as exc:
        call.abort(exc)
        raise


def _step_out(place: _Place, verdict: Verdict, seconds: float) -> Generator[Operation, Any, None]:
    """Give the permit and the tokens back, wait ``seconds`` (and what the permits add),
    and take a permit again, ahead of requests that have not started."""
    place.held, tokens, place.tokens = False, place.tokens, None
    backoff = yield Release(place.epoch, verdict, tokens, seconds)
    if backoff.pause is not None:
        place.passed = backoff.pause  # the wait below is that pause
    yield Sleep(seconds + backoff.spread)
    place.epoch = yield Acquire(returning=True)
    place.held = True


def _admitted(call: Call, batch: Batch, place: _Place) -> Generator[Operation, Any, bool]:
    """Reserve the batch's tokens for one attempt, waiting out token pauses without a
    permit; ``False`` when the call failed in the meantime."""
    while True:
        grant = yield Admit(max(1, batch.tokens), place.passed)
        if grant.tokens is not None:
            place.tokens = grant.tokens
            return True
        yield from _step_out(place, "other", grant.wait)
        place.passed = grant.pause
        if call.error is not None:
            return False


def _slotted(limiter: RateLimit, batch: Batch, place: _Place) -> Generator[Operation, Any, None]:
    """Take the attempt's slot in the rate limit and wait until it is due (a cool-down
    meanwhile moves it later)."""
    place.slot = slot = limiter.reserve(max(1, batch.tokens))
    while (wait := limiter.remaining(slot)) > 0:
        yield Sleep(wait)


def _refused(limiter: RateLimit, place: _Place, sleep: Sleep) -> None:
    """The attempt failed: a 429 bills nothing and cools every sharer of the limit down."""
    if sleep.throttled and place.slot is not None:
        limiter.settle(place.slot, 0)
        limiter.cool_down(sleep.seconds)
    place.slot = None


def _verdict_of(sleep: Sleep) -> Verdict:
    """What a backoff tells the permits: the limit its 429 named, if a 429 caused it."""
    if not sleep.throttled:
        return "other"
    if sleep.limit == "requests":
        return "throttled"
    return "tokens" if sleep.limit == "tokens" else "surge"


def run_on_threads(
    call: Call,
    permits: ThreadPermits,
    send: Callable[[bytes], httpx.Response],
    sleep: Callable[[float], None],
    workers: int,
    limiter: RateLimit | None = None,
) -> None:
    """Run a call with up to ``workers`` threads (on this thread when there is one)."""

    def perform(op: Operation) -> Any:
        if isinstance(op, Acquire):
            return permits.acquire(op.returning)
        if isinstance(op, Admit):
            return permits.admit(op.tokens, op.passed)
        if isinstance(op, Release):
            return permits.release(op.epoch, op.verdict, op.tokens, op.seconds)
        if isinstance(op, Sleep):
            return sleep(op.seconds)
        return op.build() if isinstance(op, Load) else send(op.body)

    def work() -> None:
        ops, value, error = worker(call, limiter), None, None
        while True:
            try:
                op = ops.throw(error) if error is not None else ops.send(value)
            except StopIteration:
                return
            value, error = None, None
            try:
                value = perform(op)
            except BaseException as exc:
                error = exc

    if workers <= 1:
        work()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tongyi-vision") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
        try:
            for future in futures:
                future.result()
        except BaseException as exc:
            call.abort(exc)
            raise


async def run_on_tasks(
    call: Call,
    permits: AsyncPermits,
    send: Callable[[bytes], Awaitable[httpx.Response]],
    sleep: Callable[[float], Awaitable[Any]],
    workers: int,
    limiter: RateLimit | None = None,
) -> None:
    """Run a call with up to ``workers`` tasks; media bodies are built on worker threads."""

    async def perform(op: Operation) -> Any:
        if isinstance(op, Acquire):
            return await permits.acquire(op.returning)
        if isinstance(op, Admit):
            return await permits.admit(op.tokens, op.passed)
        if isinstance(op, Release):
            return await permits.release(op.epoch, op.verdict, op.tokens, op.seconds)
        if isinstance(op, Sleep):
            return await sleep(op.seconds)
        if isinstance(op, Load):
            return await asyncio.to_thread(op.build) if op.blocking else op.build()
        return await send(op.body)

    async def work() -> None:
        ops, value, error = worker(call, limiter), None, None
        while True:
            try:
                op = ops.throw(error) if error is not None else ops.send(value)
            except StopIteration:
                return
            value, error = None, None
            try:
                value = await perform(op)
            except BaseException as exc:
                error = exc

    tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
