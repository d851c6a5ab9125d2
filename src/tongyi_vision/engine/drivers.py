"""Running a call's requests on worker threads (:class:`Client`) or asyncio tasks
(:class:`AsyncClient`).

What a worker does is written once, as the generator :func:`worker`: take a
permit, take a batch, run the batch's flow of effects (:mod:`.scheduler`),
reserve the request's estimated tokens before each attempt is sent (waiting out
a token pause without a permit), wait for the attempt's slots (holding its
permit, so that no more requests wait for slots than may be in flight): in the
client's learned pace once it has one (:class:`~.ratelimit.RateLearner`), then in
the :class:`~.ratelimit.RateLimit` it was given, if any; note the attempt going
(the learner measures from that), give the permit back while a backoff is waited
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
from .ratelimit import RateLearner, RateLimit, Sent, Slot
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
    """Give a permit back, saying how its attempt ended, with the tokens it reserved, the
    backoff it now waits (``seconds``) and whether a limiter has taken its 429 in
    (``paced``). Answered with a :class:`~.permits.Backoff`."""

    epoch: int
    verdict: Verdict
    tokens: Tokens | None = None
    seconds: float = 0.0
    paced: bool = False


Operation = Acquire | Admit | Release | Load | Send | Sleep
Worker = Generator[Operation, Any, None]


@dataclass
class _Place:
    """What a worker holds: a permit of ``epoch`` while ``held``, the tokens reserved for
    the attempt in flight, the last token pause it has waited out, and the attempt in
    flight's slots (of the rate limit, of the learned pace) and record (``sent``)."""

    epoch: int
    held: bool = True
    tokens: Tokens | None = None
    passed: int = 0
    slot: Slot | None = None
    paced: Slot | None = None
    sent: Sent | None = None


@dataclass(frozen=True)
class Pacing:
    """What meters a client's rate: the :class:`RateLimit` it was given (``known``), and
    what it learns from 429s (``learner``). Neither blocks."""

    known: RateLimit | None = None
    learner: RateLearner | None = None


def worker(call: Call, pacing: Pacing | None = None) -> Worker:
    """One worker of ``call``, as the operations a driver performs; every error of an
    operation is thrown back in here, where the flow of the request decides what it means.
    ``pacing`` gives each attempt its slots and hears how it ended."""
    pacing = pacing or Pacing()
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
                        paced = _refused(pacing, place, effect)
                        yield from _step_out(place, _verdict_of(effect), effect.seconds, paced)
                        continue
                    if isinstance(effect, Send):
                        if not (yield from _admitted(call, batch, place)):
                            break  # the call failed or was stopped while this one waited
                        yield from _slotted(pacing, batch, place)
                        if pacing.learner is not None:
                            place.sent = pacing.learner.sent(max(1, batch.tokens), place.paced)
                    try:
                        answer = yield effect
                    except (InputError, httpx.HTTPError) as exc:
                        error = exc
            finally:
                flow.close()
                passed = place.passed
                if verdict == "succeeded":
                    _succeeded(pacing, place, call.take_billed(batch))
                if place.held:
                    yield Release(place.epoch, verdict, place.tokens)
    except BaseException as exc:
        call.abort(exc)
        raise


def _step_out(
    place: _Place, verdict: Verdict, seconds: float, paced: bool = False
) -> Generator[Operation, Any, None]:
    """Give the permit and the tokens back, wait ``seconds`` (and what the permits add),
    and take a permit again, ahead of requests that have not started."""
    place.held, tokens, place.tokens = False, place.tokens, None
    backoff = yield Release(place.epoch, verdict, tokens, seconds, paced)
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


def _slotted(pacing: Pacing, batch: Batch, place: _Place) -> Generator[Operation, Any, None]:
    """Take the attempt's slot in the learned pace (the client's own), then in the known
    limit (perhaps shared), and wait until each is due (a cool-down meanwhile moves it)."""
    tokens = max(1, batch.tokens)
    pace = pacing.learner.pace if pacing.learner is not None else None
    if pace is not None:
        while not isinstance(taken := pace.reserve_soon(tokens), Slot):
            yield Sleep(taken)
        place.paced = slot = taken
        while (wait := pace.remaining(slot)) > 0:
            yield Sleep(wait)
    if pacing.known is not None:
        place.slot = slot = pacing.known.reserve(tokens)
        while (wait := pacing.known.remaining(slot)) > 0:
            yield Sleep(wait)


def _succeeded(pacing: Pacing, place: _Place, billed: int | None) -> None:
    """The attempt passed: charge its slots what it billed, and let the learner know."""
    if billed is None:  # pragma: no cover - a succeeded batch always has its billed tokens
        return
    pace = pacing.learner.pace if pacing.learner is not None else None
    if pacing.known is not None and place.slot is not None:
        pacing.known.settle(place.slot, billed)
    if pace is not None and place.paced is not None:
        pace.settle(place.paced, billed)
    if pacing.learner is not None and place.sent is not None:
        pacing.learner.succeeded(place.sent, billed)


def _refused(pacing: Pacing, place: _Place, sleep: Sleep) -> bool:
    """The attempt failed and waits ``sleep``: a 429 bills nothing, cools the known limit
    (every sharer of it) down and teaches the learner. Returns whether a limiter took the
    429 in, so that the permits leave concurrency alone."""
    slot, paced_slot, sent = place.slot, place.paced, place.sent
    place.slot = place.paced = place.sent = None
    if not sleep.throttled:
        return False
    paced = False
    pace = pacing.learner.pace if pacing.learner is not None else None
    if pace is not None and paced_slot is not None:
        pace.settle(paced_slot, 0)
    if pacing.learner is not None and sent is not None:
        paced = pacing.learner.refused(sent, sleep.limit, sleep.seconds, sleep.told)
    if pacing.known is not None and slot is not None:
        pacing.known.settle(slot, 0)
        pacing.known.cool_down(sleep.seconds)
        paced = True
    return paced


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
    pacing: Pacing | None = None,
) -> None:
    """Run a call with up to ``workers`` threads (on this thread when there is one)."""

    def perform(op: Operation) -> Any:
        if isinstance(op, Acquire):
            return permits.acquire(op.returning)
        if isinstance(op, Admit):
            return permits.admit(op.tokens, op.passed)
        if isinstance(op, Release):
            return permits.release(op.epoch, op.verdict, op.tokens, op.seconds, op.paced)
        if isinstance(op, Sleep):
            return sleep(op.seconds)
        return op.build() if isinstance(op, Load) else send(op.body)

    def work() -> None:
        ops, value, error = worker(call, pacing), None, None
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
    pacing: Pacing | None = None,
) -> None:
    """Run a call with up to ``workers`` tasks; media bodies are built on worker threads."""

    async def perform(op: Operation) -> Any:
        if isinstance(op, Acquire):
            return await permits.acquire(op.returning)
        if isinstance(op, Admit):
            return await permits.admit(op.tokens, op.passed)
        if isinstance(op, Release):
            return await permits.release(op.epoch, op.verdict, op.tokens, op.seconds, op.paced)
        if isinstance(op, Sleep):
            return await sleep(op.seconds)
        if isinstance(op, Load):
            return await asyncio.to_thread(op.build) if op.blocking else op.build()
        return await send(op.body)

    async def work() -> None:
        ops, value, error = worker(call, pacing), None, None
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
