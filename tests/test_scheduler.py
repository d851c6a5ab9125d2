"""The scheduler's decisions, driven directly: a request's flow is a generator of effects,
so each test plays the service by hand, with no I/O, no threads and no event loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from tongyi_vision import (
    APIConnectionError,
    BadRequestError,
    MediaNotFoundError,
    ServerError,
)
from tongyi_vision.engine.planner import Batch, Limits, Plan, dedupe, pack
from tongyi_vision.engine.scheduler import (
    Call,
    Effect,
    Load,
    OnInvalid,
    RequestSettings,
    RetryPolicy,
    Send,
    Sleep,
)
from tongyi_vision.media.prepared import Prepared, prepare_text

DIMENSION = 4


def call_of(
    parts: Sequence[str | Prepared],
    *,
    max_parts: int = 20,
    on_invalid: OnInvalid = "raise",
    max_retries: int = 3,
) -> Call:
    prepared = [(i, p if isinstance(p, Prepared) else prepare_text(p)) for i, p in enumerate(parts)]
    unique, owners = dedupe(prepared)
    plan = Plan(unique, owners, pack(unique, Limits(max_parts, 8, 1 << 20)))
    settings = RequestSettings("openai", "m", None, DIMENSION, lambda text: text)
    return Call(plan, settings=settings, policy=RetryPolicy(max_retries), on_invalid=on_invalid)


def texts_of(body: bytes) -> list[str]:
    return list(json.loads(body)["input"])


def vector(text: str) -> list[float]:
    return [float(len(text)), 1.0, 2.0, 3.0]


def answer(body: bytes) -> httpx.Response:
    data = [
        {"object": "embedding", "index": i, "embedding": vector(t)}
        for i, t in enumerate(texts_of(body))
    ]
    usage = {"prompt_tokens": 3, "total_tokens": 3}
    return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})


def error(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": "no", "code": str(status)}}, headers=headers
    )


Reply = Callable[[bytes], httpx.Response | Exception]


def play(call: Call, batch: Batch, replies: Sequence[Reply]) -> tuple[list[Effect], str]:
    """Run one request's flow: build bodies, answer each send with the next reply."""
    flow = call.run_batch(batch)
    effects: list[Effect] = []
    value: Any = None
    thrown: BaseException | None = None
    pending = list(replies)
    while True:
        try:
            effect = flow.throw(thrown) if thrown is not None else flow.send(value)
        except StopIteration as done:
            return effects, done.value
        effects.append(effect)
        value, thrown = None, None
        if isinstance(effect, Load):
            try:
                value = effect.build()
            except MediaNotFoundError as exc:
                thrown = exc
        elif isinstance(effect, Send):
            reply = pending.pop(0)(effect.body)
            if isinstance(reply, Exception):
                thrown = reply
            else:
                value = reply


def test_a_request_loads_sends_and_stores_its_vectors() -> None:
    call = call_of(["a", "bb", "a"])
    batch = call.take()
    assert batch is not None
    effects, verdict = play(call, batch, [answer])
    assert [type(e) for e in effects] == [Load, Send]
    assert verdict == "succeeded"
    assert texts_of(effects[1].body) == ["a", "bb"]  # type: ignore[union-attr]
    partial = call.partial(3)
    assert partial.vectors == [vector("a"), vector("bb"), vector("a")]
    assert partial.vectors[0] is not partial.vectors[2]  # duplicates get their own copy
    assert (call.usage.requests, call.usage.retries) == (1, 0)


def test_a_429_backs_off_as_the_server_says_then_succeeds() -> None:
    call = call_of(["a"])
    batch = call.take()
    assert batch is not None
    effects, verdict = play(call, batch, [lambda _: error(429, **{"retry-after": "2"}), answer])
    sleeps = [e for e in effects if isinstance(e, Sleep)]
    assert sleeps == [Sleep(2.0, throttled=True, told=2.0)]  # the wait the server asked for
    assert verdict == "succeeded"
    assert (call.usage.requests, call.usage.retries) == (2, 1)


def test_server_errors_are_retried_max_retries_times_then_fail_naming_the_parts() -> None:
    call = call_of(["a", "b"], max_retries=2)
    batch = call.take()
    assert batch is not None
    effects, verdict = play(call, batch, [lambda _: error(503)] * 3)
    assert sum(isinstance(e, Send) for e in effects) == 3  # the first attempt and two retries
    assert [e.throttled for e in effects if isinstance(e, Sleep)] == [False, False]
    assert verdict == "other"
    assert isinstance(call.error, ServerError)
    assert call.error.part_indexes == (0, 1)
    assert call.take() is None  # a failed call starts nothing new


def test_a_broken_connection_is_thrown_into_the_flow_and_retried() -> None:
    call = call_of(["a"])
    batch = call.take()
    assert batch is not None
    refused = httpx.ConnectError("refused")
    effects, verdict = play(call, batch, [lambda _: refused, answer])
    assert verdict == "succeeded" and sum(isinstance(e, Sleep) for e in effects) == 1


def test_a_connection_that_never_comes_back_fails_as_a_connection_error() -> None:
    call = call_of(["a"], max_retries=1)
    batch = call.take()
    assert batch is not None
    play(call, batch, [lambda _: httpx.ReadError("gone")] * 2)
    assert isinstance(call.error, APIConnectionError) and "gone" in str(call.error)


def test_a_request_too_large_is_split_in_halves_queued_first() -> None:
    call = call_of(["a", "b", "c", "d", "e"], max_parts=2)  # batches ab, cd, e
    first = call.take()
    assert first is not None
    _, verdict = play(call, first, [lambda _: error(413)])
    assert verdict == "other" and call.error is None
    halves = [call.take(), call.take()]
    assert [h.items for h in halves if h is not None] == [[0], [1]]
    remaining = call.take()
    assert remaining is not None and remaining.items == [2, 3]


def test_a_bad_request_of_several_parts_fails_the_call_when_not_skipping() -> None:
    call = call_of(["a", "b"])
    batch = call.take()
    assert batch is not None
    play(call, batch, [lambda _: error(400)])
    assert isinstance(call.error, BadRequestError) and call.error.part_indexes == (0, 1)


def test_skipping_splits_a_refused_request_until_the_refused_part_stands_alone() -> None:
    call = call_of(["good", "bad", "fine", "okay"], on_invalid="skip")

    def service(body: bytes) -> httpx.Response:
        return error(400) if "bad" in texts_of(body) else answer(body)

    requests = 0
    while (batch := call.take()) is not None:
        _, _ = play(call, batch, [service])
        requests += 1
    partial = call.partial(4)
    assert call.error is None
    assert partial.vectors == [vector("good"), None, vector("fine"), vector("okay")]
    assert list(partial.errors) == [1] and isinstance(partial.errors[1], BadRequestError)
    assert partial.errors[1].part_indexes == (1,)
    assert requests == 5  # abcd refused; ab refused, cd ok; a ok, b refused


def test_skipping_leaves_out_a_part_that_fails_to_load_and_sends_the_rest() -> None:
    def vanish() -> dict[str, Any]:
        raise MediaNotFoundError("could not be read while sending", part="'gone.png'")

    gone = Prepared("image", "i:gone", "'gone.png'", 100, 1, 0, vanish)
    call = call_of(["a", gone, "b"], on_invalid="skip")
    # one media batch (gone) and one text batch (a, b)
    sent: list[list[str]] = []

    def service(body: bytes) -> httpx.Response:
        sent.append(texts_of(body))
        return answer(body)

    while (batch := call.take()) is not None:
        play(call, batch, [service])
    partial = call.partial(3)
    assert partial.vectors[0] == vector("a") and partial.vectors[2] == vector("b")
    assert isinstance(partial.errors[1], MediaNotFoundError) and partial.errors[1].part_index == 1
    assert sent == [["a", "b"]]  # the batch that only held the vanished part sent nothing


def test_without_skipping_a_part_that_fails_to_load_fails_its_request() -> None:
    def vanish() -> dict[str, Any]:
        raise MediaNotFoundError("could not be read while sending", part="'gone.png'")

    call = call_of([Prepared("image", "i:gone", "'gone.png'", 100, 1, 0, vanish)])
    batch = call.take()
    assert batch is not None
    effects, verdict = play(call, batch, [])
    assert [type(e) for e in effects] == [Load] and verdict == "other"
    assert isinstance(call.error, MediaNotFoundError)


def test_a_call_stopped_during_a_backoff_sends_nothing_more() -> None:
    call = call_of(["a"])
    batch = call.take()
    assert batch is not None
    flow = call.run_batch(batch)
    body = flow.send(None)
    assert isinstance(body, Load)
    assert isinstance(flow.send(body.build()), Send)
    assert isinstance(flow.send(error(500)), Sleep)
    call.abort(KeyboardInterrupt())
    with pytest.raises(StopIteration) as done:
        flow.send(None)
    assert done.value.value == "other"
    assert "interrupted" in str(call.error)


def test_a_resumed_call_places_new_vectors_around_what_was_known() -> None:
    # Part 0 was finished by an earlier call: only parts 1 and 2 are planned again.
    unique, owners = dedupe([(1, prepare_text("a")), (2, prepare_text("bb"))])
    plan = Plan(unique, owners, pack(unique, Limits(20, 8, 1 << 20)))
    settings = RequestSettings("openai", "m", None, DIMENSION, lambda text: text)
    call = Call(plan, settings=settings, policy=RetryPolicy())
    while (batch := call.take()) is not None:
        play(call, batch, [answer])
    known: list[list[float] | None] = [[9.0] * DIMENSION, None, None]
    assert call.partial(3, known).vectors == [[9.0] * DIMENSION, vector("a"), vector("bb")]
