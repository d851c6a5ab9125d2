"""The client against hostile answers and hostile arguments: each case is refused with a
typed error (before any request where the input is at fault), nothing hangs, nothing leaks
the key, and nothing already paid for is lost."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests._core_fakes import KEY, FakeService, MakeAsyncClient, MakeClient, error_response
from tongyi_vision import (
    APIResponseValidationError,
    APITimeoutError,
    AsyncClient,
    Client,
    ConfigurationError,
    InputError,
    PartialResult,
    RateLimitError,
    TongyiVisionError,
)
from tongyi_vision.engine.transport import MAX_ANSWER_BYTES

# --- answers that drip, inflate, or lie ---


def _answer_body(count: int, value: Any = 0.5, usage: Any = 3) -> bytes:
    data = [{"index": i, "embedding": [value] + [0.25] * 767} for i in range(count)]
    return json.dumps(
        {"data": data, "usage": {"prompt_tokens": usage, "total_tokens": usage}}
    ).encode()


class Drip(httpx.SyncByteStream):
    """A valid answer, one byte every ``pause`` seconds: it would end after many seconds."""

    def __init__(self, body: bytes, pause: float = 0.05) -> None:
        self.body, self.pause = body, pause

    def __iter__(self) -> Iterator[bytes]:
        for byte in self.body:
            time.sleep(self.pause)
            yield bytes([byte])


class AsyncDrip(httpx.AsyncByteStream):
    def __init__(self, body: bytes, pause: float = 0.05) -> None:
        self.body, self.pause = body, pause

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for byte in self.body:
            await asyncio.sleep(self.pause)
            yield bytes([byte])


def test_an_answer_that_drips_ends_at_the_attempts_deadline() -> None:
    # 200 bytes at 50 ms: ten seconds of dripping; the attempt may take half a second.
    def drip(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Drip(_answer_body(1)[:200]))

    http = httpx.Client(transport=httpx.MockTransport(drip))
    with Client(api_key=KEY, http_client=http, timeout=0.5, max_retries=0) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError, match="deadline"):
            client.embed(["a"])
    assert time.monotonic() - started < 10  # it did not wait for the drip to end


async def test_an_async_answer_that_drips_ends_at_the_attempts_deadline() -> None:
    def drip(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=AsyncDrip(_answer_body(1)[:200]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(drip))
    client = AsyncClient(api_key=KEY, http_client=http, timeout=0.5, max_retries=0)
    with pytest.raises(APITimeoutError, match="deadline"):
        await client.embed(["a"])
    await http.aclose()


def test_a_compressed_answer_is_not_inflated_past_a_cap(make_client: MakeClient) -> None:
    bomb = gzip.compress(b"\0" * (MAX_ANSWER_BYTES * 2), compresslevel=9)
    assert len(bomb) < MAX_ANSWER_BYTES // 100

    def inflate(request: httpx.Request) -> httpx.Response:
        # As a stream: a body given as content would be inflated by httpx on this side.
        stream = httpx.ByteStream(bomb)
        return httpx.Response(200, headers={"content-encoding": "gzip"}, stream=stream)

    client = make_client(inflate, max_retries=0)
    tracemalloc.start()
    try:
        with pytest.raises(APIResponseValidationError, match="decodes to more than"):
            client.embed(["a"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_ANSWER_BYTES


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_answer_body(1, value=True), "not a valid"),  # a boolean is no float
        (_answer_body(1, value=1e300), "which no embedding has"),
        (json.dumps({"data": [{"index": 0, "embedding": [0.0] * 768}]}).encode(), "all zeros"),
        (_answer_body(1, usage=-1_000_000_000), "not a valid"),  # a cost of minus $90
    ],
    ids=["boolean", "huge", "zeros", "negative-usage"],
)
def test_answers_a_broken_server_would_give_are_refused(
    make_client: MakeClient, body: bytes, message: str
) -> None:
    client = make_client(lambda request: httpx.Response(200, content=body), max_retries=0)
    with pytest.raises(APIResponseValidationError, match=message):
        client.embed(["a"])
    assert client.usage.cost_usd >= 0


# --- secrets echoed by the server ---


@pytest.mark.parametrize("where", ["code", "request_id", "message"])
def test_a_key_echoed_in_an_error_body_is_redacted_everywhere(
    make_client: MakeClient, where: str
) -> None:
    fields: dict[str, Any] = {"code": "Throttling", "request_id": "req-1", "message": "slow"}
    fields[where] = f"bad key {KEY}"
    client = make_client(lambda request: error_response(429, **fields), max_retries=0)
    with pytest.raises(RateLimitError) as caught:
        client.embed(["a"])
    shown = "".join(traceback.format_exception(caught.value)) + str(caught.value)
    assert KEY not in shown and "**********" in shown


def test_a_key_echoed_in_an_invalid_answer_is_not_chained_into_the_traceback(
    make_client: MakeClient,
) -> None:
    body = json.dumps({"data": [{"index": 0, "embedding": [KEY]}]}).encode()
    client = make_client(lambda request: httpx.Response(200, content=body), max_retries=0)
    with pytest.raises(APIResponseValidationError) as caught:
        client.embed(["a"])
    assert caught.value.__cause__ is None
    assert KEY not in "".join(traceback.format_exception(caught.value))


# --- arguments refused when the client is made ---


@pytest.mark.parametrize("key", ["sk-abc\ndef", "sk-abc\0", "sk-abc déf", "sk abc"])
def test_a_key_no_header_can_carry_is_refused_without_showing_it(key: str) -> None:
    with pytest.raises(ConfigurationError, match="API key") as caught:
        Client(api_key=key)
    assert key not in str(caught.value)


@pytest.mark.parametrize(
    "headers", [{"X-Team": "équipe"}, {"X-Token": "a\r\nInjected: 1"}, {"Bad Name": "kept"}]
)
def test_headers_no_request_can_carry_are_refused_naming_the_header(
    headers: dict[str, str],
) -> None:
    (name,) = headers
    with pytest.raises(ConfigurationError, match="default_headers") as caught:
        Client(api_key=KEY, default_headers=headers)
    assert repr(name) in str(caught.value) and headers[name] not in str(caught.value)


@pytest.mark.parametrize("timeout", [-1, 0, "10", True, float("nan")])
def test_a_timeout_that_is_no_number_of_seconds_is_refused_at_once(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        Client(api_key=KEY, timeout=timeout)


# --- calls refused before any request ---


def test_embed_none_is_a_typed_error_before_any_request(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    with pytest.raises(InputError, match="list of parts"):
        client.embed(None)  # type: ignore[call-overload]
    assert service.seen == []


def test_a_generator_of_parts_is_taken_whole_and_nothing_is_lost(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    result = client.embed(text for text in ["a", "b", "c"])
    assert len(result.vectors) == 3


async def test_the_async_client_takes_a_generator_too(
    make_async_client: MakeAsyncClient, service: FakeService
) -> None:
    client = make_async_client(service)
    result = await client.embed(text for text in ["a", "b"])
    assert len(result.vectors) == 2


def test_a_lone_surrogate_in_a_text_is_refused_before_any_request(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    with pytest.raises(InputError, match="lone surrogate") as caught:
        client.embed(["fine", "bad \udc80 text"])
    assert isinstance(caught.value, ValueError) and caught.value.part_index == 1
    assert service.seen == []
    str(caught.value).encode("utf-8")  # the message itself prints anywhere


def test_resume_refuses_the_partial_result_of_other_parts(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    first = client.embed(["a", "b"], on_invalid="skip")
    assert isinstance(first, PartialResult)
    with pytest.raises(InputError, match="other parts"):
        client.embed(["c", "d"], resume=first)
    assert client.embed(["a", "b"], resume=first).vectors == first.vectors


def test_every_refusal_is_a_tongyi_vision_error() -> None:
    refusals: list[Callable[[], object]] = [
        lambda: Client(api_key="sk\nx"),
        lambda: Client(api_key=KEY, timeout=-1),
        lambda: Client(api_key=KEY, default_headers={"X": "\0"}),
    ]
    for refuse in refusals:
        with pytest.raises(TongyiVisionError):
            refuse()
