"""One embed call's decisions: what each request does, and what happens when it fails.

A call's state lives in :class:`Call`, which does no I/O and takes no permits.
Each request is a generator (:meth:`Call.run_batch`) that yields *effects*:
build the body (:class:`Load`), send it (:class:`Send`), wait out a backoff
(:class:`Sleep`); it returns the :data:`~.permits.Verdict` of its last attempt.
The drivers of :mod:`.drivers` run those generators on threads or tasks, so
retry, backoff, splitting and failure handling are the same code for both
clients, and a test can drive a request with no I/O at all.

With ``on_invalid="skip"`` a part the service or the client refuses on its
own (an input error while loading, a 400 or 413 for one part) is recorded
against that part and the call goes on: a refused request of several parts is
split until the refused part stands alone, and the good parts are sent again
without being checked again.
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
from typing import Any, Literal

import httpx

from ..wire.dialects import Answer, build_body, parse_answer, parse_error
from ..wire.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    DimensionMismatchError,
    InputError,
    PartialResult,
    RateLimit,
    RateLimitError,
    RequestTooLargeError,
    TongyiVisionError,
    status_error_class,
)
from ..wire.results import ProgressEvent, Usage, Vector
from .permits import Verdict
from .pieces import Pieces
from .planner import Batch, Plan, split
from .transport import AnswerTooLarge

logger = logging.getLogger("tongyi_vision")

RETRYABLE_STATUSES = frozenset({408, 409, 429})
Recorder = Callable[[list[int], Answer], list[Vector]]
"""Called with a successful request's unique parts and answer; returns the vectors to keep
(the embedding cache stores them and hands back the float32 numbers it stores)."""
OnInvalid = Literal["raise", "skip"]
"""What an embed call does with a part that is refused: raise, or skip it and go on."""


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
    """Wait out a backoff, without a permit; ``throttled`` when a 429 caused it, and then
    ``limit`` says which limit it named (a 429 that names none counts as the surge guard's):
    the permits back off on that one; ``told``: the wait the service asked for
    (``Retry-After``), if it did, which tells when it admits the next request."""

    seconds: float
    throttled: bool = False
    limit: RateLimit = "surge"
    told: float | None = None


Effect = Load | Send | Sleep
BatchFlow = Generator[Effect, Any, Verdict]


DEFAULT_MAX_RATE_LIMIT_WAIT = 300.0
"""Seconds a request may spend waiting out 429s before they count against ``max_retries``."""


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` counts retries, not attempts. Backoff doubles from ``initial_backoff``
    up to ``max_backoff`` with up to 25% jitter; a ``Retry-After`` header wins, capped at
    ``max_retry_after`` seconds.

    A 429 is a rate limit, not a fault: while a request's waits for 429s add up to no more
    than ``max_rate_limit_wait`` seconds it is retried without using up ``max_retries``,
    provided the limit is known (``rate_limit_known``: the client has a rate limit) or the
    call went on (a request of it succeeded since this one's last attempt), so that a key
    refused and nothing else is still given up on after ``max_retries``."""

    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT
    rate_limit_known: bool = False

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


@dataclass(frozen=True)
class RequestSettings:
    """What every request of a client is built with and what its answers are checked against."""

    dialect: str
    model: str
    dimension: int | None
    expected_dimension: int | None
    redact: Callable[[str], str]


class Call:
    """The state of one embed call, shared by its workers (its counters under its own lock)."""

    def __init__(
        self,
        plan: Plan,
        *,
        settings: RequestSettings,
        policy: RetryPolicy,
        progress: Callable[[ProgressEvent], None] | None = None,
        parts_total: int | None = None,
        on_invalid: OnInvalid = "raise",
        pieces: Pieces | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.plan = plan
        self.pieces = pieces
        self.recorder = recorder
        self.settings = settings
        self.policy = policy
        self.progress = progress
        self.parts_total = len(plan.unique) if parts_total is None else parts_total
        self.on_invalid = on_invalid
        self.queue: deque[Batch] = deque(plan.batches)
        self.results: list[Vector | None] = [None] * len(plan.unique)
        self.refused: dict[int, TongyiVisionError] = {}
        """Errors of skipped parts, by index into the plan's unique parts."""
        self.usage = Usage()
        self.billed: dict[int, int] = {}
        """Tokens the answer of each succeeded batch billed, by ``id`` of the batch, until the
        worker that sent it takes them (to correct a rate limit's estimate)."""
        self.error: TongyiVisionError | None = None
        self.requests_done = 0
        self.parts_done = 0
        self._running = 0
        self._lock = threading.Lock()
        self._progress_lock = threading.Lock()

    # --- work ---

    def take(self) -> Batch | None:
        """The next batch to send, or ``None`` when there is none or the call has failed."""
        with self._lock:
            if self.error is not None or not self.queue:
                return None
            self._running += 1
            return self.queue.popleft()

    def take_billed(self, batch: Batch) -> int | None:
        """The tokens the answer to ``batch`` billed (``None`` if it did not succeed)."""
        with self._lock:
            return self.billed.pop(id(batch), None)

    def abort(self, exc: BaseException) -> None:
        """Stop starting new requests (an interrupt or a bug in a worker)."""
        with self._lock:
            if self.error is None:
                self.error = TongyiVisionError(f"the call was interrupted: {exc!r}")

    def run_batch(self, batch: Batch) -> BatchFlow:
        """One request, from building its body to its last attempt, as a flow of effects."""
        try:
            return (yield from self._attempts(batch))
        finally:
            with self._lock:
                self._running -= 1

    def _attempts(self, batch: Batch) -> BatchFlow:
        try:
            body = yield Load(lambda: self.build_body(batch), blocking=batch.has_media)
        except InputError as exc:
            return self._refuse(batch, exc)
        if not batch.items:
            return "other"  # every part of it was refused while loading
        retries = 0
        throttles = 0  # 429s retried without using up max_retries
        waited = 0.0  # seconds those have waited
        progress = self.requests_done  # the call's successes at this request's last attempt
        while True:
            try:
                response = yield Send(body)
            except httpx.TimeoutException as exc:
                error: APIError = APITimeoutError(
                    f"request timed out ({type(exc).__name__}: "
                    f"{self.settings.redact(str(exc)) or 'no answer in time'}); "
                    "raise timeout=... if this persists"
                )
                error.__cause__ = exc
            except AnswerTooLarge as exc:
                error = APIResponseValidationError(str(exc))
            except httpx.HTTPError as exc:
                # Connect and read errors, broken connections, undecodable bodies.
                error = APIConnectionError(
                    f"connection failed: {self.settings.redact(str(exc)) or type(exc).__name__}"
                )
                error.__cause__ = exc
            else:
                outcome = self._assess(batch, response)
                if isinstance(outcome, Answer):
                    self._succeed(batch, outcome)
                    return "succeeded"
                error = outcome
            self._count(Usage(requests=1))
            if isinstance(error, (BadRequestError, RequestTooLargeError)):
                return self._refuse(batch, error)
            if not _retryable(error):
                return self._fail(batch, error)
            retry_after = error.retry_after if isinstance(error, APIStatusError) else None
            delay = self.policy.delay(retries + throttles, retry_after)
            went_on, progress = self.requests_done > progress, self.requests_done
            waiting = (
                isinstance(error, RateLimitError)
                and (self.policy.rate_limit_known or went_on)
                and waited + delay <= self.policy.max_rate_limit_wait
            )
            if waiting:
                throttles += 1
                waited += delay
            elif retries >= self.policy.max_retries:
                return self._fail(batch, error)
            else:
                retries += 1
            self._count(Usage(retries=1))
            logger.info(
                "retrying a request of %d parts in %.2fs (%s): %s",
                len(batch.items),
                delay,
                f"{waited:.0f}s of {self.policy.max_rate_limit_wait:.0f}s waited for the rate limit"
                if waiting
                else f"retry {retries} of {self.policy.max_retries}",
                error,
            )
            self._notify()
            if isinstance(error, RateLimitError):
                yield Sleep(delay, throttled=True, limit=error.limit, told=retry_after)
            else:
                yield Sleep(delay)
            if self.error is not None:
                return "other"  # the call failed or was stopped while this one waited

    def build_body(self, batch: Batch) -> bytes:
        """The JSON body of a batch; with ``on_invalid="skip"``, parts that fail to load are
        recorded and left out (``batch.items`` then holds the parts the body carries)."""
        contents = []
        kept = []
        for unique in batch.items:
            try:
                contents.append(self.plan.unique[unique].load())
            except InputError as exc:
                # A file changed or vanished after the call was checked: name the part.
                error = exc.at(self._part_of(self.plan.owners[unique][0]))
                if self.on_invalid == "raise":
                    raise error from exc.__cause__
                self._record(unique, error)
                continue
            kept.append(unique)
        if len(kept) < len(batch.items):
            batch.items[:] = kept
            batch.text_tokens = sum(self.plan.unique[unique].text_tokens for unique in kept)
        body = build_body(
            self.settings.dialect,
            self.settings.model,
            contents,
            self.settings.dimension,
            batch.parameters,
        )
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def _assess(self, batch: Batch, response: httpx.Response) -> Answer | APIError:
        # Whatever the server sends back may echo the key: every string of it is redacted.
        redact = self.settings.redact
        request_id = _redacted(_request_id(response.headers), redact)
        if response.is_success:
            try:
                answer = parse_answer(
                    self.settings.dialect,
                    response.content,
                    count=len(batch.items),
                    dimension=self.settings.expected_dimension,
                    text_tokens=batch.text_tokens,
                    has_media=batch.has_media,
                    request_id=request_id,
                )
            except APIResponseValidationError as exc:
                exc.message = redact(exc.message)
                exc.args = (exc.message,)
                exc.status = response.status_code
                exc.request_id = _redacted(exc.request_id, redact)
                return exc
            self._count(Usage(requests=1))
            return answer
        code, message, body_request_id = parse_error(
            self.settings.dialect, response.status_code, response.content
        )
        cls = status_error_class(response.status_code, code)
        error = cls(
            redact(message),
            status=response.status_code,
            code=_redacted(code, redact),
            request_id=_redacted(body_request_id, redact) or request_id,
        )
        error.retry_after = parse_retry_after(response.headers)
        return error

    # --- outcomes ---

    def _succeed(self, batch: Batch, answer: Answer) -> None:
        # The cache keeps the batch's vectors (and gives back the numbers it keeps) before
        # they count as done, so that a killed run has cached what it paid for.
        vectors = answer.vectors if self.recorder is None else self.recorder(batch.items, answer)
        finished: dict[int, Vector] = {}
        with self._lock:
            for unique, vector in zip(batch.items, vectors, strict=True):
                self.results[unique] = vector
                for slot in self.plan.owners[unique]:
                    if self.pieces is None or not self.pieces.is_piece(slot):
                        finished[slot] = list(vector)
                    elif (whole := self.pieces.take(slot, vector)) is not None:
                        finished[whole[0]] = list(whole[1])
            self.usage = self.usage + answer.usage
            self.billed[id(batch)] = answer.usage.total_tokens
            self.requests_done += 1
            self.parts_done += sum(len(self.plan.owners[unique]) for unique in batch.items)
        self._notify(finished=True, vectors=finished)

    def _part_of(self, slot: int) -> int:
        """The caller's index of a plan slot (a piece of a long text belongs to its text)."""
        return slot if self.pieces is None else self.pieces.part_of(slot)

    def _refuse(self, batch: Batch, error: TongyiVisionError) -> Verdict:
        """A request the service (or the loading of a part) refused for its content: split it
        until the refused part stands alone, then skip that part or fail the call."""
        too_large = isinstance(error, RequestTooLargeError)
        skipping = self.on_invalid == "skip" and not isinstance(error, InputError)
        if len(batch.items) > 1 and (too_large or skipping):
            logger.info("a request of %d parts was refused; splitting it", len(batch.items))
            with self._lock:
                self.queue.extendleft(reversed(split(batch, self.plan.unique)))
            return "other"
        if skipping and batch.items:
            self._record(batch.items[0], error)
            return "other"
        return self._fail(batch, error)

    def _record(self, unique: int, error: TongyiVisionError) -> None:
        if isinstance(error, APIError):
            error.part_indexes = tuple(sorted({self._part_of(s) for s in self.plan.owners[unique]}))
        with self._lock:
            self.refused[unique] = error
            self.parts_done += len(self.plan.owners[unique])

    def _fail(self, batch: Batch, error: TongyiVisionError) -> Verdict:
        indexes = tuple(
            sorted({self._part_of(s) for unique in batch.items for s in self.plan.owners[unique]})
        )
        if isinstance(error, APIError):
            error.part_indexes = indexes
        with self._lock:
            if self.error is None:
                self.error = error
        return "other"

    def _count(self, usage: Usage) -> None:
        with self._lock:
            self.usage = self.usage + usage

    def _notify(self, *, finished: bool = False, vectors: dict[int, Vector] | None = None) -> None:
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
                    # the sender is still counted as running; if it finished, also as done
                    requests_total=self.requests_done
                    + len(self.queue)
                    + self._running
                    - (1 if finished else 0),
                    retries=self.usage.retries,
                    vectors=vectors or {},
                )
            self.progress(event)

    # --- the end ---

    def pieces_sent(self) -> int:
        """How many pieces of long texts this call embedded (equal pieces are sent once)."""
        if self.pieces is None:
            return 0
        pieces = self.pieces
        return sum(
            1
            for unique, vector in enumerate(self.results)
            if vector is not None and any(map(pieces.is_piece, self.plan.owners[unique]))
        )

    def partial(self, total: int, known: list[Vector | None] | None = None) -> PartialResult:
        """Everything the call finished, placed by the caller's indexes."""
        vectors: list[Vector | None] = list(known) if known is not None else [None] * total
        for unique, vector in enumerate(self.results):
            if vector is not None:
                for n, index in enumerate(self.plan.owners[unique]):
                    if index < total:
                        # duplicates get their own copy, so changing one vector leaves the others
                        vectors[index] = vector if n == 0 else list(vector)
        pending: dict[int, dict[int, Vector]] = {}
        if self.pieces is not None:
            for index, vector in self.pieces.whole().items():
                vectors[index] = vector
            pending = self.pieces.pending()
        errors = {
            self._part_of(slot): error
            for unique, error in self.refused.items()
            for slot in self.plan.owners[unique]
        }
        for index in errors:
            pending.pop(index, None)  # a text with a refused piece gets no vector
        return PartialResult(vectors=vectors, usage=self.usage, errors=errors, pieces=pending)


def _retryable(error: APIError) -> bool:
    if isinstance(error, DimensionMismatchError):
        return False  # the same request gets the same size back
    if isinstance(error, (APIConnectionError, APIResponseValidationError)):
        return True
    status = error.status or 0
    return status in RETRYABLE_STATUSES or status >= 500


def _redacted(text: str | None, redact: Callable[[str], str]) -> str | None:
    return None if text is None else redact(text)


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in ("x-request-id", "request-id", "x-dashscope-request-id", "x-acs-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None
