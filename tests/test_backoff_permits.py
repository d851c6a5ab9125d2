"""A request waiting out a backoff gives its permit back, and takes it back before new work."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from tests._core_fakes import permits_of
from tongyi_vision import AsyncClient, Client


def _answer(request: httpx.Request) -> httpx.Response:
    texts = json.loads(request.content)["input"]
    data = [{"index": i, "embedding": [float(len(t))] * 768} for i, t in enumerate(texts)]
    return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": len(texts)}})


def _throttle_first(text: str, seen: list[str]) -> httpx.Response | None:
    # A 503, not a 429: any backoff frees the permit, and a 429 would also start a learned
    # pace (test_learned_limit.py), whose waits go through the same stubbed sleep.
    seen.append(text)
    if text == "a" and seen.count("a") == 1:
        return httpx.Response(
            503, headers={"retry-after": "1"}, json={"error": {"message": "busy"}}
        )
    return None


def test_sync_backoff_frees_the_permit_for_other_requests() -> None:
    seen: list[str] = []
    c_answered = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        (text,) = json.loads(request.content)["input"]
        throttled = _throttle_first(text, seen)
        if throttled is not None:
            return throttled
        if text == "ccc":
            c_answered.set()
        return _answer(request)

    client = Client(
        api_key="k",
        max_concurrency=2,
        max_parts_per_request=1,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    ran_during_wait: list[bool] = []
    # While "a" waits out its Retry-After, "c" can only run in the permit "a" gave back.
    client._sleep = lambda seconds: ran_during_wait.append(c_answered.wait(timeout=5))
    with client:
        result = client.embed(["a", "bb", "ccc"])
    assert ran_during_wait == [True]
    assert [v[0] for v in result.vectors] == [1.0, 2.0, 3.0]
    assert permits_of(client).in_flight == 0


async def test_async_backoff_frees_the_permit_for_other_requests() -> None:
    seen: list[str] = []
    c_answered = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        (text,) = json.loads(request.content)["input"]
        throttled = _throttle_first(text, seen)
        if throttled is not None:
            return throttled
        if text == "ccc":
            c_answered.set()
        return _answer(request)

    client = AsyncClient(
        api_key="k",
        max_concurrency=2,
        max_parts_per_request=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    ran_during_wait: list[bool] = []

    async def sleep(seconds: float) -> None:
        try:
            await asyncio.wait_for(c_answered.wait(), timeout=5)
            ran_during_wait.append(True)
        except asyncio.TimeoutError:
            ran_during_wait.append(False)

    client._sleep = sleep
    async with client:
        result = await client.embed(["a", "bb", "ccc"])
    assert ran_during_wait == [True]
    assert [v[0] for v in result.vectors] == [1.0, 2.0, 3.0]
    assert permits_of(client).in_flight == 0


async def test_a_call_cancelled_during_a_backoff_leaves_the_client_limit_whole() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"message": "busy"}})

    client = AsyncClient(
        api_key="k",
        max_concurrency=4,
        max_parts_per_request=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()  # until cancelled

    client._sleep = sleep
    async with client:
        task = asyncio.ensure_future(client.embed(["a", "b", "c"]))
        await asyncio.wait_for(waiting.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert permits_of(client).in_flight == 0
