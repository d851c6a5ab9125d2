"""A known rate limit, against a real emulator process: with ``rate_limit`` both clients stay
under the emulator's ``--rpm`` (almost no request refused) and every vector comes back in
order; with the limit unknown they still finish, learning it from 429s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from integration_tests.conftest import RunningEmulator
from tongyi_vision import AsyncClient, Client, EmbedResult, RateLimit

RPM = 1800  # 30 a second: a short test with enough requests for a 1% share to mean something
TEXTS = [f"caption {i}: a photo of thing number {i}" for i in range(120)]


def _options(server: RunningEmulator, rate_limit: RateLimit | None) -> dict[str, Any]:
    return {
        "api_key": server.api_key,
        "base_url": server.base_url,
        "max_concurrency": 8,
        "max_parts_per_request": 1,  # one request per text
        "rate_limit": rate_limit,
    }


def _embed(kind: str, options: dict[str, Any]) -> EmbedResult:
    if kind == "sync":
        with Client(**options) as client:
            return client.embed_texts(TEXTS)

    async def run() -> EmbedResult:
        async with AsyncClient(**options) as client:
            return await client.embed_texts(TEXTS)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def expected(emulator: RunningEmulator) -> list[list[float]]:
    with Client(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        return client.embed_texts(TEXTS).vectors


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_with_the_limit_configured_almost_nothing_is_refused(
    start_emulator: Callable[..., RunningEmulator], expected: list[list[float]], kind: str
) -> None:
    server = start_emulator("--rpm", str(RPM), "--latency", "0.02")
    result = _embed(kind, _options(server, RateLimit(requests_per_minute=RPM)))
    stats = server.stats()
    assert result.vectors == expected  # every vector, in input order
    assert stats["succeeded"] == len(TEXTS)  # each text paid for once
    assert stats["throttled"] * 100 < stats["requests"]  # under 1% refused
    assert result.usage.retries == stats["throttled"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_shared_limiter_keeps_two_clients_under_one_budget(
    start_emulator: Callable[..., RunningEmulator], expected: list[list[float]], kind: str
) -> None:
    server = start_emulator("--rpm", str(RPM), "--latency", "0.02")
    limit = RateLimit(requests_per_minute=RPM)

    async def both() -> list[EmbedResult]:
        options = _options(server, limit)
        return list(
            await asyncio.gather(
                asyncio.to_thread(_embed, kind, options), asyncio.to_thread(_embed, kind, options)
            )
        )

    results = asyncio.run(both())
    stats = server.stats()
    assert [r.vectors for r in results] == [expected, expected]
    assert stats["succeeded"] == 2 * len(TEXTS)
    assert stats["throttled"] * 100 < stats["requests"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_with_the_limit_unknown_the_call_still_finishes(
    start_emulator: Callable[..., RunningEmulator], expected: list[list[float]], kind: str
) -> None:
    server = start_emulator("--rps", "10", "--latency", "0.02")
    options = {**_options(server, None), "max_concurrency": 16}
    result = _embed(kind, options)  # the default max_retries=3: 429s wait, not fail
    stats = server.stats()
    assert result.vectors == expected
    assert stats["succeeded"] == len(TEXTS)
    assert 0 < stats["throttled"] < 3 * len(TEXTS)  # bounded, if not small
