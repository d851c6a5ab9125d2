"""Concurrency, retries and backoff: written once, run by a thread driver and an asyncio driver.

A call's decisions live in :class:`Call`, which does no I/O. Each request is
a generator (:meth:`Call.run_batch`) that yields *effects*: build the body
(:class:`Load`), send it (:class:`Send`), wait (:class:`Sleep`). The sync
client runs those generators on worker threads, the async client on tasks;
both take work with :meth:`Call.try_take` and give it back with
:meth:`Call.finish` under the client's lock (a condition per client, so the
slots of :class:`AdaptiveLimit` are shared by every call on it), so
concurrency, retry, backoff, rate-limit adaptation, splitting and failure
handling are the same code.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._dialects import Answer, build_body, parse_answer, parse_error
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InputError,
    RateLimitError,
    TongyiVisionError,
    status_error_class,
)
from ._planner import Batch, Plan, split
from ._types import PartialResult, ProgressEvent, Usage, Vector

logger = logging.getLogger("tongyi_vision")

RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Load:
    """Build the request body (reads and encodes media; may raise :class:`InputError`)."""

    build: Callable[[], bytes]
    blocking: bool


@dataclass(frozen=True)
class Send:
    body: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float


Effect = Load | Send | Sleep
BatchFlow = Generator[Effect, Any, None]


class _Wait:
    """Returned by :meth:`Call.try_take` when a worker must wait for a slot or for work."""


WAIT = _Wait()


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` counts retries, not attempts. Backoff doubles from ``initial_backoff``
    up to ``max_backoff`` with up to 25% jitter; a ``Retry-After`` header wins, capped at
    ``max_retry_after`` seconds."""

    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retries_so_far: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.initial_backoff * 2.0**retries_so_far, self.max_backoff)
        return base * (1 - 0.25 * random.random())


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    Garbage, negative or missing values give ``None`` (the caller then backs off
    on its own); a date in the past gives 0.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if 0 <= value < float("inf"):
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return None
    return seconds


class AdaptiveLimit:
    """How many requests may be in flight: halved on a 429 (once per burst), raised by one
    after as many successes in a row as the current limit, up to ``maximum``.

    Kept by the client across calls, and counting the requests of every call in
    flight, so concurrent calls on one client share ``max_concurrency``
    instead of each taking all of it. Safe to share between threads.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.current = maximum
        self.epoch = 0
        self.in_flight = 0
        self._successes = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Take a slot for one request if the current limit allows it."""
        with self._lock:
            if self.in_flight >= self.current:
                return False
            self.in_flight += 1
            return True

    def force_acquire(self) -> None:
        """Count a slot as taken regardless of the limit: an interrupted wait takes back its own."""
        with self._lock:
            self.in_flight += 1

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def on_throttle(self, epoch_at_send: int) -> None:
        with self._lock:
            if epoch_at_send != self.epoch:
                return  # lowered already since this request was sent
            self.current = max(1, self.current // 2)
            self.epoch += 1
            self._successes = 0

    def on_success(self) -> None:
        with self._lock:
            if self.current >= self.maximum:
                return
            self._successes += 1
            if self._successes >= self.current:
                self.current += 1
                self._successes = 0


@dataclass(frozen=True)
class Endpoint:
    dialect: str
    model: str
    dimension: int | None
    expected_dimension: int | None
    redact: Callable[[str], str]


class Call:
    """The state of one embed call, shared by its workers. :meth:`try_take` and
    :meth:`finish` are called with the driver's lock held (one lock per client, so
    that a slot freed by one call wakes the workers of another); :meth:`run_batch`'s
    generator runs outside it."""

    def __init__(
        self,
        plan: Plan,
        *,
        endpoint: Endpoint,
        policy: RetryPolicy,
        limit: AdaptiveLimit,
        progress: Callable[[ProgressEvent], None] | None,
        parts_total: int,
    ) -> None:
        self.plan = plan
        self.endpoint = endpoint
        self.policy = policy
        self.limit = limit
        self.progress = progress
        self.parts_total = parts_total
        self.queue: deque[Batch] = deque(plan.batches)
        self.results: list[Vector | None] = [None] * len(plan.unique)
        self.usage = Usage()
        self.in_flight = 0
        self.paused = 0
        self.resuming = 0
        self.error: TongyiVisionError | None = None
        self.requests_done = 0
        self.parts_done = 0
        self._lock = threading.Lock()
        self._progress_lock = threading.Lock()

    # --- taking and giving back work (driver's lock held) ---

    def try_take(self) -> Batch | _Wait | None:
        if self.error is not None or (not self.queue and self.in_flight == 0 and not self.paused):
            return None
        # Requests coming back from a backoff get free slots before new requests start.
        if not self.queue or self.resuming or not self.limit.try_acquire():
            return WAIT
        self.in_flight += 1
        return self.queue.popleft()

    def finish(self) -> None:
        self.in_flight -= 1
        self.limit.release()

    def pause(self) -> None:
        """A request starts waiting out a backoff: its slot goes back for others to use.

        Holding slots while waiting would let a burst of 429s come back all at
        once, past a limit that was lowered because of them.
        """
        self.in_flight -= 1
        self.paused += 1
        self.limit.release()

    def want_resume(self) -> None:
        """A paused request's wait is over; it queues for a slot ahead of new requests."""
        self.resuming += 1

    def try_resume(self) -> bool:
        """Give a waiting request its slot back, if the current limit allows it."""
        if not self.limit.try_acquire():
            return False
        self.resuming -= 1
        self.paused -= 1
        self.in_flight += 1
        return True

    def resume_now(self, queued: bool) -> None:
        """Take the slot back whatever the limit, when a wait is interrupted, so that the
        worker's :meth:`finish` releases a slot it holds."""
        if queued:
            self.resuming -= 1
        self.paused -= 1
        self.in_flight += 1
        self.limit.force_acquire()

    def abort(self, exc: BaseException) -> None:
        """Stop starting new requests (an interrupt or a bug in a worker)."""
        with self._lock:
            if self.error is None:
                self.error = TongyiVisionError(f"the call was interrupted: {exc!r}")

    # --- one request, as a flow of effects ---

    def run_batch(self, batch: Batch) -> BatchFlow:
        try:
            body = yield Load(lambda: self.build_body(batch), blocking=batch.has_media)
        except InputError as exc:
            self._fail(batch, exc)
            return
        retries = 0
        while True:
            epoch = self.limit.epoch
            try:
                response = yield Send(body)
            except httpx.TimeoutException as exc:
                error: APIError = APITimeoutError(
                    f"request timed out ({type(exc).__name__}); raise timeout=... if this persists"
                )
                error.__cause__ = exc
            except httpx.HTTPError as exc:
                # Connect and read errors, broken connections, undecodable bodies.
                error = APIConnectionError(
                    f"connection failed: {self.endpoint.redact(str(exc)) or type(exc).__name__}"
                )
                error.__cause__ = exc
            else:
                outcome = self._assess(batch, response)
                if isinstance(outcome, Answer):
                    self._succeed(batch, outcome)
                    return
                error = outcome
            with self._lock:
                self.usage = self.usage + Usage(requests=1)
            if isinstance(error, APIStatusError) and error.status == 413 and len(batch.items) > 1:
                self._split(batch)
                return
            if not self._retryable(error) or retries >= self.policy.max_retries:
                self._fail(batch, error)
                return
            retry_after = error.retry_after if isinstance(error, APIStatusError) else None
            if isinstance(error, RateLimitError):
                self.limit.on_throttle(epoch)
            delay = self.policy.delay(retries, retry_after)
            retries += 1
            with self._lock:
                self.usage = self.usage + Usage(retries=1)
            logger.info(
                "retrying a request of %d parts in %.2fs (retry %d of %d): %s",
                len(batch.items),
                delay,
                retries,
                self.policy.max_retries,
                error,
            )
            self._notify()
            yield Sleep(delay)

    def build_body(self, batch: Batch) -> bytes:
        contents = []
        for slot in batch.items:
            try:
                contents.append(self.plan.unique[slot].load())
            except InputError as exc:
                # A file changed or vanished after the call was checked: name the part.
                raise exc.at(self.plan.owners[slot][0]) from exc.__cause__
        body = build_body(
            self.endpoint.dialect, self.endpoint.model, contents, self.endpoint.dimension
        )
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def _assess(self, batch: Batch, response: httpx.Response) -> Answer | APIError:
        request_id = _request_id(response.headers)
        if response.is_success:
            try:
                answer = parse_answer(
                    self.endpoint.dialect,
                    response.content,
                    count=len(batch.items),
                    dimension=self.endpoint.expected_dimension,
                    text_tokens=batch.text_tokens,
                    has_media=batch.has_media,
                    request_id=request_id,
                )
            except APIResponseValidationError as exc:
                exc.message = self.endpoint.redact(exc.message)
                exc.args = (exc.message,)
                exc.status = response.status_code
                return exc
            with self._lock:
                self.usage = self.usage + Usage(requests=1)
            return answer
        code, message, body_request_id = parse_error(
            self.endpoint.dialect, response.status_code, response.content
        )
        cls = status_error_class(response.status_code, code)
        error = cls(
            self.endpoint.redact(message),
            status=response.status_code,
            code=code,
            request_id=body_request_id or request_id,
        )
        error.retry_after = parse_retry_after(response.headers)
        return error

    @staticmethod
    def _retryable(error: APIError) -> bool:
        if isinstance(error, (APIConnectionError, APIResponseValidationError)):
            return True
        status = error.status or 0
        return status in RETRYABLE_STATUSES or status >= 500

    # --- outcomes ---

    def _succeed(self, batch: Batch, answer: Answer) -> None:
        self.limit.on_success()
        with self._lock:
            for slot, vector in zip(batch.items, answer.vectors, strict=True):
                self.results[slot] = vector
            self.usage = self.usage + answer.usage
            self.requests_done += 1
            self.parts_done += sum(len(self.plan.owners[slot]) for slot in batch.items)
        self._notify(finished=True)

    def _notify(self, *, finished: bool = False) -> None:
        """Tell the progress callback where the call stands; events arrive one at a time,
        in order, whichever worker sends them."""
        if self.progress is None:
            return
        with self._progress_lock:
            with self._lock:
                event = ProgressEvent(
                    parts_done=self.parts_done,
                    parts_total=self.parts_total,
                    requests_done=self.requests_done,
                    # the sender is still counted in flight; if it finished, also in done
                    requests_total=self.requests_done
                    + len(self.queue)
                    + self.in_flight
                    - (1 if finished else 0),
                    retries=self.usage.retries,
                )
            self.progress(event)

    def _split(self, batch: Batch) -> None:
        halves = split(batch, self.plan.unique)
        logger.info(
            "the service found a request of %d parts too large; splitting it", len(batch.items)
        )
        with self._lock:
            self.queue.extendleft(reversed(halves))

    def _fail(self, batch: Batch, error: TongyiVisionError) -> None:
        indexes = tuple(sorted(i for slot in batch.items for i in self.plan.owners[slot]))
        if isinstance(error, APIError):
            error.part_indexes = indexes
        with self._lock:
            if self.error is None:
                self.error = error

    # --- the end ---

    def partial(self, total: int, known: list[Vector | None] | None = None) -> PartialResult:
        vectors: list[Vector | None] = list(known) if known is not None else [None] * total
        for slot, vector in enumerate(self.results):
            if vector is not None:
                for n, index in enumerate(self.plan.owners[slot]):
                    # duplicates get their own copy, so changing one vector leaves the others
                    vectors[index] = vector if n == 0 else list(vector)
        return PartialResult(vectors=vectors, usage=self.usage)


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in ("x-request-id", "request-id", "x-dashscope-request-id", "x-acs-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None


# --- the two drivers ---


def drive_sync(
    flow: BatchFlow, send: Callable[[bytes], httpx.Response], sleep: Callable[[float], None]
) -> None:
    """Run one request's flow on this thread."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration:
            return
        value, error = None, None
        try:
            if isinstance(effect, Load):
                value = effect.build()
            elif isinstance(effect, Send):
                value = send(effect.body)
            else:
                sleep(effect.seconds)
        except (InputError, httpx.HTTPError) as exc:
            error = exc


async def drive_async(
    flow: BatchFlow,
    send: Callable[[bytes], Any],
    sleep: Callable[[float], Any],
) -> None:
    """Run one request's flow as a task; media bodies are built on a worker thread."""
    import asyncio

    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration:
            return
        value, error = None, None
        try:
            if isinstance(effect, Load):
                value = await asyncio.to_thread(effect.build) if effect.blocking else effect.build()
            elif isinstance(effect, Send):
                value = await send(effect.body)
            else:
                await sleep(effect.seconds)
        except (InputError, httpx.HTTPError) as exc:
            error = exc
