"""Running a call's requests on worker threads (:class:`Client`) or asyncio tasks
(:class:`AsyncClient`).

What a worker does is written once, as the generator :func:`worker`: take a
permit, take a batch, run the batch's flow of effects (:mod:`.scheduler`), give
the permit back while a backoff is waited out and take one again (ahead of new
requests) when it is over, and give it back at the end, also when the worker
is interrupted. It yields *operations*; the two drivers below only perform them,
each in its own way (a blocking call, an awaited one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from ..wire.errors import InputError
from .permits import AsyncPermits, ThreadPermits, Verdict
from .scheduler import Call, Load, Send, Sleep


@dataclass(frozen=True)
class Acquire:
    """Take a permit (``returning``: a request back from a backoff, served first)."""

    returning: bool = False


@dataclass(frozen=True)
class Release:
    """Give a permit back, saying how its attempt ended."""

    epoch: int
    verdict: Verdict


Operation = Acquire | Release | Load | Send | Sleep
Worker = Generator[Operation, Any, None]


def worker(call: Call) -> Worker:
    """One worker of ``call``, as the operations a driver performs; every error of an
    operation is thrown back in here, where the flow of the request decides what it means."""
    try:
        while True:
            epoch = yield Acquire()
            batch = call.take()
            if batch is None:
                yield Release(epoch, "other")  # no batch left for the permit just taken
                return
            flow = call.run_batch(batch)
            held = True
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
                        held = False
                        yield Release(epoch, "throttled" if effect.throttled else "other")
                        yield effect
                        epoch = yield Acquire(returning=True)
                        held = True
                        continue
                    try:
                        answer = yield effect
                    except (InputError, httpx.HTTPError) as exc:
                        error = exc
            finally:
                flow.close()
                if held:
                    yield Release(epoch, verdict)
    except BaseException as exc:
        call.abort(exc)
        raise


def run_on_threads(
    call: Call,
    permits: ThreadPermits,
    send: Callable[[bytes], httpx.Response],
    sleep: Callable[[float], None],
    workers: int,
) -> None:
    """Run a call with up to ``workers`` threads (on this thread when there is one)."""

    def perform(op: Operation) -> Any:
        if isinstance(op, Acquire):
            return permits.acquire(op.returning)
        if isinstance(op, Release):
            return permits.release(op.epoch, op.verdict)
        if isinstance(op, Sleep):
            return sleep(op.seconds)
        return op.build() if isinstance(op, Load) else send(op.body)

    def work() -> None:
        ops, value, error = worker(call), None, None
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
) -> None:
    """Run a call with up to ``workers`` tasks; media bodies are built on worker threads."""

    async def perform(op: Operation) -> Any:
        if isinstance(op, Acquire):
            return await permits.acquire(op.returning)
        if isinstance(op, Release):
            return await permits.release(op.epoch, op.verdict)
        if isinstance(op, Sleep):
            return await sleep(op.seconds)
        if isinstance(op, Load):
            return await asyncio.to_thread(op.build) if op.blocking else op.build()
        return await send(op.body)

    async def work() -> None:
        ops, value, error = worker(call), None, None
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
