"""Each 429 is learned as the limit it names, against a real emulator process: a call that
runs into a tokens-per-minute or a requests-per-minute limit completes, every part gets its
vector in order, the client paces itself by that limit and no other (concurrency stays
where it was), and the share of refused requests stays bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integration_tests.conftest import RunningEmulator
from tongyi_vision import Client

# Texts of about 66 estimated tokens each (the emulator bills them as the client estimates).
TEXTS = [f"sample caption {i}: " + " ".join(f"word{i}x{j}" for j in range(12)) for i in range(48)]
MAX_CONCURRENCY = 8


def _client(server: RunningEmulator) -> Client:
    return Client(
        api_key=server.api_key,
        base_url=server.base_url,
        dialect="dashscope",
        max_concurrency=MAX_CONCURRENCY,
        max_parts_per_request=2,
        max_retries=20,
    )


def _expected(emulator: RunningEmulator) -> list[list[float]]:
    """The vectors of TEXTS from an emulator with no limits (vectors depend on content only)."""
    with _client(emulator) as client:
        return client.embed(TEXTS).vectors


@pytest.mark.parametrize(
    ("flags", "limit"),
    [(("--tpm", "45000"), "tokens"), (("--rpm", "300"), "requests")],
    ids=["tpm", "rpm"],
)
def test_a_call_over_a_rate_limit_completes_and_backs_off_on_that_limit(
    start_emulator: Callable[..., RunningEmulator],
    emulator: RunningEmulator,
    flags: tuple[str, ...],
    limit: str,
) -> None:
    expected = _expected(emulator)
    server = start_emulator(*flags, "--latency", "0.02")
    with _client(server) as client:
        result = client.embed(TEXTS)
        permits = client._permits.state
        learner = client._learner
    stats = server.stats()
    assert result.vectors == expected  # every part, its own vector, in input order
    sent = len(TEXTS) // 2
    assert stats["succeeded"] == sent  # nothing sent twice once it had succeeded
    assert stats["throttled"] > 0  # the limit was reached...
    assert result.usage.retries == stats["throttled"]  # ...and every refusal was retried
    # the first burst is refused (that is how the limit is learned), then the pace holds
    assert stats["throttled"] <= sent // 2
    # a learned pace meters the rate: concurrency and the token budget are left alone
    assert permits.limit == MAX_CONCURRENCY and permits.tokens.limit is None
    if limit == "tokens":
        assert learner.tokens_per_second is not None and learner.requests_per_second is None
    else:
        assert learner.requests_per_second is not None and learner.tokens_per_second is None
