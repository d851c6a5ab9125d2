"""Retries: which failures are retried, how many times, and how long the client waits."""

from __future__ import annotations

import email.utils
from types import SimpleNamespace

import httpx
import pytest

from tests._core_fakes import (
    FakeService,
    MakeAsyncClient,
    MakeClient,
    Seen,
    delays,
    error_response,
    text_vector,
)
from tongyi_vision import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
)
from tongyi_vision.engine import scheduler as _scheduler
from tongyi_vision.engine.scheduler import RetryPolicy, parse_retry_after

NOW = 1_700_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": http_date(NOW + 30)}, 30.0),
        ({"retry-after": http_date(NOW - 30)}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        # garbage
        ({"retry-after": ""}, None),
        ({"retry-after": "   "}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "10 seconds"}, None),
        ({"retry-after": "Mon, 99 Foo 2024 25:61:00 GMT"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, None),  # no zone: unknown instant
        ({"retry-after-ms": "-1"}, None),
        ({"retry-after-ms": "nan"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: object) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0, max_retry_after=60.0)
    for retries, base in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        for _ in range(20):
            assert 0.75 * base <= policy.delay(retries, None) <= base
    assert policy.delay(0, 12.0) == 12.0
    assert policy.delay(0, 3600.0) == 60.0


def throttled(seconds: str | None = None) -> httpx.Response:
    headers = {"retry-after": seconds} if seconds is not None else {}
    return error_response(429, code="Throttling", headers=headers)


def test_429_then_success_honours_retry_after(make_client: MakeClient) -> None:
    service = FakeService(script={1: lambda seen: throttled("3")})
    client = make_client(service)
    result = client.embed(["a"])
    assert result.vectors == [text_vector("a")]
    assert delays(client) == [3.0]
    assert result.usage.retries == 1
    assert result.usage.requests == 2
    assert len(service.seen) == 2


def test_retry_after_as_an_http_date(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the scheduler's clock stands still at NOW, so the wait is exact
    monkeypatch.setattr(_scheduler, "time", SimpleNamespace(time=lambda: NOW))
    service = FakeService(script={1: lambda seen: throttled(http_date(NOW + 30))})
    client = make_client(service)
    client.embed(["a"])
    assert delays(client) == [30.0]


def test_retry_after_is_capped(make_client: MakeClient) -> None:
    service = FakeService(script={1: lambda seen: throttled("86400")})
    client = make_client(service)
    client.embed(["a"])
    assert delays(client) == [60.0]


@pytest.mark.parametrize("garbage", ["soon", "-1", "nan", "", "Tomorrow"])
def test_garbage_retry_after_falls_back_to_backoff(make_client: MakeClient, garbage: str) -> None:
    service = FakeService(script={1: lambda seen: throttled(garbage)})
    client = make_client(service)
    client.embed(["a"])
    (delay,) = delays(client)
    assert 0.375 <= delay <= 0.5


def test_retry_after_on_a_503_is_honoured(make_client: MakeClient) -> None:
    service = FakeService(
        script={1: lambda seen: error_response(503, headers={"retry-after": "4"})}
    )
    client = make_client(service)
    client.embed(["a"])
    assert delays(client) == [4.0]


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (1, 2), (2, 3), (5, 6)])
def test_max_retries_counts_retries_not_attempts(
    make_client: MakeClient, max_retries: int, attempts: int
) -> None:
    service = FakeService(fail=lambda seen: error_response(500, code="InternalError"))
    client = make_client(service, max_retries=max_retries)
    with pytest.raises(ServerError) as caught:
        client.embed(["a"])
    assert len(service.seen) == attempts
    assert len(delays(client)) == max_retries
    assert caught.value.partial is not None
    assert caught.value.partial.usage.retries == max_retries
    assert caught.value.partial.usage.requests == attempts
    # exponential: each wait is longer than the last
    assert delays(client) == sorted(delays(client))


def test_rate_limit_error_after_retries_carries_retry_after(make_client: MakeClient) -> None:
    service = FakeService(fail=lambda seen: throttled("2"))
    client = make_client(service, max_retries=2)
    with pytest.raises(RateLimitError) as caught:
        client.embed(["a"])
    assert caught.value.retry_after == 2.0
    assert len(service.seen) == 3
    assert delays(client) == [2.0, 2.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(make_client: MakeClient, status: int) -> None:
    service = FakeService(fail=lambda seen: error_response(status))
    client = make_client(service, max_retries=5)
    with pytest.raises(APIStatusError) as caught:
        client.embed(["a"])
    assert caught.value.status == status
    assert len(service.seen) == 1
    assert delays(client) == []


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(make_client: MakeClient, status: int) -> None:
    service = FakeService(script={1: lambda seen: error_response(status)})
    client = make_client(service)
    result = client.embed(["a", "b"])
    assert result.vectors == [text_vector("a"), text_vector("b")]
    assert len(service.seen) == 2
    assert len(delays(client)) == 1


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError,
        httpx.ReadError,
        httpx.RemoteProtocolError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.PoolTimeout,
    ],
)
def test_connection_errors_and_timeouts_are_retried(
    make_client: MakeClient, exc: type[httpx.TransportError]
) -> None:
    calls = []
    service = FakeService()

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise exc("boom", request=request)
        return service(request)

    client = make_client(handler)
    result = client.embed(["a"])
    assert result.vectors == [text_vector("a")]
    assert len(calls) == 2
    assert result.usage.requests == 2
    assert result.usage.retries == 1


def test_timeouts_exhausting_retries_raise_timeout_error(make_client: MakeClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = make_client(handler, max_retries=2)
    with pytest.raises(APITimeoutError):
        client.embed(["a"])
    assert len(delays(client)) == 2


def test_413_splits_the_batch_until_it_fits(make_client: MakeClient) -> None:
    def too_large_when_big(seen: Seen) -> httpx.Response | None:
        if len(seen.contents) > 2:
            return error_response(413, code="BadRequest.TooLarge")
        return None

    service = FakeService(fail=too_large_when_big)
    client = make_client(service, max_concurrency=1)
    texts = [f"t{i}" for i in range(8)]
    result = client.embed(texts)
    assert result.vectors == [text_vector(t) for t in texts]
    sizes = [len(s.contents) for s in service.seen]
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    # every part reached the service in a successful request exactly once
    ok = [c["text"] for s in service.seen if len(s.contents) <= 2 for c in s.contents]
    assert sorted(ok) == sorted(texts)
    assert delays(client) == []


def test_413_on_a_single_part_is_an_error(make_client: MakeClient) -> None:
    service = FakeService(fail=lambda seen: error_response(413, code="BadRequest.TooLarge"))
    client = make_client(service)
    with pytest.raises(RequestTooLargeError) as caught:
        client.embed(["a", "b"])
    assert caught.value.part_indexes in ((0,), (1,))
    assert [len(s.contents) for s in service.seen][:1] == [2]


async def test_async_client_retries_the_same_way(make_async_client: MakeAsyncClient) -> None:
    service = FakeService(
        script={1: lambda seen: throttled("5"), 2: lambda seen: error_response(502)}
    )
    client = make_async_client(service)
    result = await client.embed(["a"])
    assert result.vectors == [text_vector("a")]
    assert delays(client)[0] == 5.0
    assert 0.75 <= delays(client)[1] <= 1.0
    assert result.usage.retries == 2


async def test_async_connection_error_after_retries(make_async_client: MakeAsyncClient) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_async_client(handler, max_retries=1)
    with pytest.raises(APIConnectionError):
        await client.embed(["a"])
    assert len(delays(client)) == 1
