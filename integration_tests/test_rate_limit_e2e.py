"""Rate limits against a real emulator process, for both clients: with the limit configured
(``rate_limit=RateLimit(...)``) they stay under the emulator's ``--rpm`` or ``--tpm``
(almost no request refused); with it unknown they learn it from the 429s and pace
themselves, including ``--rps 10`` with ``max_concurrency=16`` (the case that used to see
most requests refused, or a call run out of retries). Every vector comes back, in order,
each text billed once.

No timing is asserted. The refused shares are bounded with room for a loaded machine: a
configured client is refused only when the machine's jitter beats its margin (a few in a
hundred at worst); a learning client is refused in its first burst (what it learns from)
and about once every few seconds after (where it finds the limit). Without pacing, the
same runs refused a third to two thirds of their requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from integration_tests.conftest import RunningEmulator
from tongyi_vision import AsyncClient, Client, EmbedResult, RateLimit

TEXTS = [f"caption {i}: a photo of thing number {i}" for i in range(120)]
KINDS = ["sync", "async"]


def _options(server: RunningEmulator, rate_limit: RateLimit | None, **more: Any) -> dict[str, Any]:
    return {
        "api_key": server.api_key,
        "base_url": server.base_url,
        "max_concurrency": 8,
        "max_parts_per_request": 1,  # one request per text
        "rate_limit": rate_limit,
        **more,
    }


def _embed(kind: str, options: dict[str, Any], texts: list[str] = TEXTS) -> EmbedResult:
    if kind == "sync":
        with Client(**options) as client:
            return client.embed_texts(texts)

    async def run() -> EmbedResult:
        async with AsyncClient(**options) as client:
            return await client.embed_texts(texts)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def expected(emulator: RunningEmulator) -> list[list[float]]:
    with Client(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        return client.embed_texts(TEXTS).vectors


def _check(result: EmbedResult, server: RunningEmulator, expected: list[list[float]]) -> float:
    """Every vector in order, each text billed once, every refusal retried; the share of
    requests refused."""
    stats = server.stats()
    assert result.vectors == expected  # every vector, in input order
    assert stats["succeeded"] == stats["billed_parts"] == len(expected)  # each billed once
    assert result.usage.retries == stats["throttled"]  # every refusal was retried
    return stats["throttled"] / stats["requests"]


# --- configured ------------------------------------------------------------------------------

RPM = 1800  # 30 a second: a short test with enough requests for a share to mean something


@pytest.mark.parametrize("kind", KINDS)
def test_with_the_requests_limit_configured_almost_nothing_is_refused(
    start_emulator: Callable[..., RunningEmulator], expected: list[list[float]], kind: str
) -> None:
    server = start_emulator("--rpm", str(RPM), "--latency", "0.02")
    result = _embed(kind, _options(server, RateLimit(requests_per_minute=RPM)))
    assert _check(result, server, expected) < 0.04


@pytest.mark.parametrize("kind", KINDS)
def test_with_the_tokens_limit_configured_almost_nothing_is_refused(
    start_emulator: Callable[..., RunningEmulator], expected: list[list[float]], kind: str
) -> None:
    tpm = 60 * 30 * 15  # about 30 of these one-text requests (15 tokens or so) a second
    server = start_emulator("--tpm", str(tpm), "--latency", "0.02")
    result = _embed(kind, _options(server, RateLimit(tokens_per_minute=tpm)))
    assert _check(result, server, expected) < 0.04


@pytest.mark.parametrize("kind", KINDS)
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
    assert stats["throttled"] < 0.04 * stats["requests"]


# --- unknown: learned from 429s ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_with_the_limit_unknown_the_client_learns_it_at_rps_10_with_16_at_once(
    start_emulator: Callable[..., RunningEmulator], expected: list[list[float]], kind: str
) -> None:
    server = start_emulator("--rps", "10", "--latency", "0.02")
    options = _options(server, None, max_concurrency=16)
    result = _embed(kind, options)  # the default max_retries=3: 429s wait, not fail
    # 6 of the first 16 refused (that is how it learns the limit), then about one every few
    # seconds; unpaced, half or more were
    assert _check(result, server, expected) < 0.20


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("flags", [("--rpm", str(RPM)), ("--tpm", str(60 * 30 * 15))])
def test_with_the_limit_unknown_the_client_learns_rpm_and_tpm(
    start_emulator: Callable[..., RunningEmulator],
    expected: list[list[float]],
    kind: str,
    flags: tuple[str, str],
) -> None:
    server = start_emulator(*flags, "--latency", "0.02")
    result = _embed(kind, _options(server, None, max_concurrency=16))
    # answers in 20 ms: the 16 in flight when the first 429 comes are mostly refused too
    # (12-13% of this short run on a loaded machine), then the pace holds
    assert _check(result, server, expected) < 0.25
