"""Each fault the emulator can inject surfaces as its own error class in the client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tongyi_vision import (
    APIConnectionError,
    APIResponseValidationError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ContentModerationError,
    Image,
    NotFoundError,
    RateLimitError,
    ServerError,
    TongyiVisionError,
    UnknownModelWarning,
    estimate_text_tokens,
)

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

DIALECTS = ("openai", "dashscope")


def fault(spec: str) -> dict[str, str]:
    """The fault header, with a unique id so ``times=`` counts for this test only."""
    return {"X-Emulator-Fault": f"{spec};id={uuid.uuid4()}"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_key_is_authentication_error(
    emulator: RunningEmulator, client_factory: Callable[..., Client], dialect: str
) -> None:
    client = client_factory(dialect, api_key="not-the-key")
    with pytest.raises(AuthenticationError) as caught:
        client.embed(["hello"])
    assert caught.value.status == 401
    assert caught.value.code == "InvalidApiKey"
    assert caught.value.request_id
    assert "not-the-key" not in str(caught.value)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_model_is_not_found(client_factory: Callable[..., Client], dialect: str) -> None:
    with pytest.warns(UnknownModelWarning, match="tongyi-embedding-vision-max"):
        client = client_factory(dialect, model="tongyi-embedding-vision-max")
    with pytest.raises(NotFoundError) as caught:
        client.embed(["hello"])
    assert caught.value.status == 404
    assert caught.value.code == "ModelNotFound"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_server_side_validation_is_bad_request(
    emulator: RunningEmulator, client_factory: Callable[..., Client], dialect: str
) -> None:
    # The client cannot see behind a URL; the emulator reads it from its media folder.
    client = client_factory(dialect)
    with pytest.raises(BadRequestError) as missing:
        client.embed(["fine", Image(emulator.media_url + "missing.jpg")])
    assert missing.value.code == "InvalidURL"
    assert missing.value.part_indexes == (1,)
    with pytest.raises(BadRequestError) as gif:
        client.embed([Image(emulator.media_url + "anim.gif")])
    assert gif.value.code == "InvalidParameter"
    assert "GIF" in gif.value.message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_content_moderation(client_factory: Callable[..., Client], dialect: str) -> None:
    client = client_factory(dialect, default_headers=fault("status=400;code=DataInspectionFailed"))
    with pytest.raises(ContentModerationError):
        client.embed(["something"])


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_server_errors_after_retries(
    emulator: RunningEmulator, client_factory: Callable[..., Client], dialect: str, status: int
) -> None:
    before = emulator.stats()["requests"]
    client = client_factory(dialect, max_retries=2, default_headers=fault(f"status={status}"))
    client._sleep = lambda seconds: None  # backoff is the scheduler's business, not this test's
    with pytest.raises(ServerError) as caught:
        client.embed(["hello"])
    assert caught.value.status == status
    assert caught.value.partial is not None
    assert caught.value.partial.usage.retries == 2
    assert emulator.stats()["requests"] - before >= 3  # other tests may share the server


@pytest.mark.parametrize("dialect", DIALECTS)
def test_transient_server_error_then_success(
    client_factory: Callable[..., Client], dialect: str
) -> None:
    client = client_factory(dialect, default_headers=fault("status=503;times=2"))
    client._sleep = lambda seconds: None
    result = client.embed(["recovers"])
    assert len(result.vectors) == 1
    assert result.usage.retries == 2


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dropped_connection_is_connection_error(
    client_factory: Callable[..., Client], dialect: str
) -> None:
    client = client_factory(dialect, max_retries=1, default_headers=fault("drop"))
    client._sleep = lambda seconds: None
    with pytest.raises(APIConnectionError) as caught:
        client.embed(["hello"])
    assert caught.value.status is None


@pytest.mark.parametrize("kind", ["cut"])
def test_body_cut_mid_answer_is_connection_error(
    client_factory: Callable[..., Client], kind: str
) -> None:
    client = client_factory(max_retries=0, default_headers=fault(kind))
    with pytest.raises(APIConnectionError):
        client.embed(["hello", "world"])


@pytest.mark.parametrize("kind", ["malformed", "truncate", "wrong_count"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_damaged_answer_is_validation_error(
    client_factory: Callable[..., Client], dialect: str, kind: str
) -> None:
    client = client_factory(dialect, max_retries=0, default_headers=fault(kind))
    with pytest.raises(APIResponseValidationError):
        client.embed(["one", "two"])
    single = client_factory(dialect, max_retries=0, default_headers=fault(kind))
    with pytest.raises(APIResponseValidationError):
        single.embed(["alone"])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_damaged_answer_is_retried(client_factory: Callable[..., Client], dialect: str) -> None:
    client = client_factory(dialect, default_headers=fault("wrong_count;times=1"))
    client._sleep = lambda seconds: None
    result = client.embed(["a", "b", "c"])
    assert len(result.vectors) == 3
    assert result.usage.retries == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rate_limit_retried_then_success(
    client_factory: Callable[..., Client], dialect: str
) -> None:
    client = client_factory(dialect, default_headers=fault("status=429;retry_after=0;times=3"))
    result = client.embed(["throttled at first"])
    assert len(result.vectors) == 1
    assert result.usage.retries == 3
    assert result.usage.prompt_tokens == estimate_text_tokens("throttled at first")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rate_limit_exhausted(client_factory: Callable[..., Client], dialect: str) -> None:
    client = client_factory(
        dialect, max_retries=2, default_headers=fault("status=429;retry_after=0")
    )
    with pytest.raises(RateLimitError) as caught:
        client.embed(["always throttled"])
    assert caught.value.code == "Throttling.RateQuota"
    assert caught.value.retry_after == 0


def test_async_client_sees_the_same_errors(emulator: RunningEmulator) -> None:
    async def main() -> list[type[TongyiVisionError]]:
        seen: list[type[TongyiVisionError]] = []
        for spec, retries in (("drop", 0), ("malformed", 0), ("status=503", 0)):
            async with AsyncClient(
                emulator.api_key,
                base_url=emulator.base_url,
                max_retries=retries,
                default_headers=fault(spec),
            ) as client:
                try:
                    await client.embed(["x"])
                except TongyiVisionError as exc:
                    seen.append(type(exc))
        return seen

    assert asyncio.run(main()) == [APIConnectionError, APIResponseValidationError, ServerError]


def test_concurrency_limit_is_rate_limit_with_retry_after(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    import httpx

    server = start_emulator("--max-concurrency", "1", "--latency", "0.5", "--retry-after", "2")
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"model": "tongyi-embedding-vision-flash", "input": "hello"}

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            first = asyncio.ensure_future(http.post("/v1/embeddings", json=body, headers=headers))
            await asyncio.sleep(0.2)  # the first request is now in flight (0.5 s latency)
            second = await http.post("/v1/embeddings", json=body, headers=headers)
            return [await first, second]

    first, second = asyncio.run(main())
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "2"
    assert second.json()["error"]["code"] == "Throttling.RateQuota"


def test_rpm_window(start_emulator: Callable[..., RunningEmulator]) -> None:
    import httpx

    server = start_emulator("--rpm", "3")
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"model": "tongyi-embedding-vision-flash", "input": {"contents": [{"text": "x"}]}}
    path = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
    statuses = []
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for _ in range(4):
            response = http.post(path, json=body, headers=headers)
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response.json()["code"] == "Throttling.RateQuota"
    assert 0 < int(response.headers["retry-after"]) <= 60


def test_rps_window(start_emulator: Callable[..., RunningEmulator]) -> None:
    import httpx

    server = start_emulator("--rps", "0.2")  # one request per 5 seconds
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"model": "tongyi-embedding-vision-flash", "input": "x"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as http:
        first = http.post("/v1/embeddings", json=body)
        second = http.post("/v1/embeddings", json=body)
    assert (first.status_code, second.status_code) == (200, 429)
    assert float(second.headers["retry-after-ms"]) > 0


def test_slow_answer_is_timeout(client_factory: Callable[..., Client]) -> None:
    from tongyi_vision import APITimeoutError

    client = client_factory(timeout=0.2, max_retries=0, default_headers=fault("latency=2"))
    with pytest.raises(APITimeoutError):
        client.embed(["slow"])
