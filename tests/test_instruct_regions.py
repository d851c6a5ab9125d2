"""Instructions on queries (never documents), regions and workspaces, the 401 of a key of
another region, and which limit a 429 names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._core_fakes import (
    FakeService,
    MakeAsyncClient,
    MakeClient,
    error_response,
    text_vector,
)
from tongyi_vision import (
    FLASH,
    FLASH_SNAPSHOT,
    AuthenticationError,
    ConfigurationError,
    EmbeddingCache,
    InputError,
    RateLimitError,
)

TASK = "Find images that match the description"
NATIVE_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"


def snapshot(**options: Any) -> dict[str, Any]:
    return {"dialect": "dashscope", "model": FLASH_SNAPSHOT, **options}


# --- instruct ----------------------------------------------------------------------------


def test_embed_query_sends_its_instruction_and_returns_one_vector(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot())
    vector = client.embed_query("red bicycle", instruct=TASK)
    assert service.seen[0].body == {
        "model": FLASH_SNAPSHOT,
        "input": {"contents": [{"text": "red bicycle"}]},
        "parameters": {"instruct": TASK},
    }
    assert vector == text_vector("red bicycle")
    assert client.usage.requests == 1


def test_the_clients_instruction_goes_with_queries_and_never_with_documents(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot(instruct=TASK, dimension=512))
    service.dimension = 512
    client.embed(["a document", "another"])
    client.embed_texts(["a third"])
    client.embed_query("a query")
    client.embed_query("a query", instruct="Find the passage that answers the question")
    assert [s.body.get("parameters") for s in service.seen] == [
        {"dimension": 512},
        {"dimension": 512},
        {"dimension": 512, "instruct": TASK},
        {"dimension": 512, "instruct": "Find the passage that answers the question"},
    ]


async def test_the_async_client_has_embed_query_too(make_async_client: MakeAsyncClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_async_client(service, **snapshot(instruct=TASK))
    vector = await client.embed_query("red bicycle")
    await client.embed(["a document"])
    assert vector == text_vector("red bicycle")
    assert [s.body.get("parameters") for s in service.seen] == [{"instruct": TASK}, None]


def test_instruct_is_refused_before_sending_on_models_without_it(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope")
    with pytest.raises(ConfigurationError, match=f"{FLASH} does not take instruct"):
        make_client(service, dialect="dashscope", model=FLASH, instruct=TASK)
    with pytest.raises(ConfigurationError, match="openai dialect"):
        make_client(FakeService(), model=FLASH_SNAPSHOT, instruct=TASK)
    undated = make_client(service, dialect="dashscope", model=FLASH)
    with pytest.raises(InputError, match=f"{FLASH} does not take instruct"):
        undated.embed_query("red bicycle", instruct=TASK)
    with pytest.raises(InputError, match="one text"):
        undated.embed_query(["red bicycle"])  # type: ignore[arg-type]
    assert service.seen == []
    # without an instruction, a query is a text like any other
    assert undated.embed_query("red bicycle") == text_vector("red bicycle")


def test_the_cache_keys_queries_on_their_instruction(
    make_client: MakeClient, tmp_path: Path
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot(cache=EmbeddingCache(tmp_path / "cache.sqlite")))
    client.embed_query("red bicycle", instruct=TASK)
    client.embed_query("red bicycle", instruct=TASK)
    assert len(service.seen) == 1
    client.embed(["red bicycle"])  # the document: no instruction, another vector
    client.embed_query("red bicycle", instruct="Another task")
    assert [s.body.get("parameters") for s in service.seen] == [
        {"instruct": TASK},
        None,
        {"instruct": "Another task"},
    ]


# --- regions and workspaces ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "url", "region"),
    [
        ({}, "https://dashscope-intl.aliyuncs.com", "singapore"),
        ({"region": "singapore"}, "https://dashscope-intl.aliyuncs.com", "singapore"),
        ({"region": "beijing"}, "https://dashscope.aliyuncs.com", "beijing"),
        (
            {"workspace": "ws-abc123"},
            "https://ws-abc123.ap-southeast-1.maas.aliyuncs.com",
            "singapore",
        ),
        (
            {"workspace": "ws-abc123", "region": "singapore"},
            "https://ws-abc123.ap-southeast-1.maas.aliyuncs.com",
            "singapore",
        ),
        (
            {"region": "beijing", "base_url": "https://proxy.example.com"},
            "https://proxy.example.com",
            None,
        ),
        ({"workspace": "ws-1", "base_url": "http://127.0.0.1:9"}, "http://127.0.0.1:9", None),
    ],
)
def test_region_and_workspace_pick_the_native_url_and_base_url_wins(
    make_client: MakeClient, options: dict[str, Any], url: str, region: str | None
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, dialect="dashscope", **options)
    assert (client.base_url, client.region) == (url, region)
    client.embed(["hello"])
    assert str(service.seen[0].request.url) == url + NATIVE_PATH


def test_an_explicit_region_wins_over_the_environment(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "https://dashscope-intl.aliyuncs.com")
    client = make_client(FakeService(dialect="dashscope"), dialect="dashscope", region="beijing")
    assert client.base_url == "https://dashscope.aliyuncs.com"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"region": "hangzhou"}, "'singapore' or 'beijing'"),
        ({"workspace": "WS_bad!"}, "workspace id"),
        ({"workspace": "ws-abc", "region": "beijing"}, "Singapore"),
        ({"region": "beijing", "dialect": "openai"}, "dialect='dashscope'"),
    ],
)
def test_bad_regions_and_workspaces_are_configuration_errors(
    make_client: MakeClient, options: dict[str, Any], expected: str
) -> None:
    options.setdefault("dialect", "dashscope")
    with pytest.raises(ConfigurationError, match=expected):
        make_client(FakeService(dialect="dashscope"), **options)


@pytest.mark.parametrize(("region", "other"), [("singapore", "beijing"), ("beijing", "singapore")])
def test_a_401_says_keys_are_bound_to_a_region_and_names_the_one_used(
    make_client: MakeClient, region: str, other: str
) -> None:
    service = FakeService(
        dialect="dashscope",
        fail=lambda seen: error_response(401, code="InvalidApiKey", message="Invalid API-key"),
    )
    client = make_client(service, dialect="dashscope", region=region)
    with pytest.raises(AuthenticationError) as caught:
        client.embed(["hello"])
    error = caught.value
    assert error.message == "Invalid API-key"  # the provider's words stay as they were
    text = str(error)
    assert "bound to a region" in text and f"the {region} region" in text
    assert f"region={other!r}" in text and "DASHSCOPE_API_KEY" in text
    assert "sk-test" not in text


def test_a_401_of_the_gateway_says_nothing_of_regions(make_client: MakeClient) -> None:
    service = FakeService(fail=lambda seen: error_response(401, dialect="openai", code="bad"))
    with pytest.raises(AuthenticationError) as caught:
        make_client(service).embed(["hello"])
    assert "region" not in str(caught.value)


# --- which limit a 429 names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "limit"),
    [
        ("Throttling.RateQuota", "Requests rate limit exceeded", "requests"),
        ("Throttling.AllocationQuota", "Allocated quota exceeded", "tokens"),
        ("Throttling", "Request rate increased too quickly", "surge"),
        ("Throttling", "Too many requests", "requests"),
        ("Throttling", "", "surge"),
        (None, "tokens per minute exceeded", "tokens"),
    ],
)
def test_each_429_code_names_its_limit(
    make_client: MakeClient, code: str | None, message: str, limit: str
) -> None:
    service = FakeService(
        dialect="dashscope",
        fail=lambda seen: error_response(429, code=code, message=message or "throttled"),
    )
    client = make_client(service, dialect="dashscope", max_retries=1)
    with pytest.raises(RateLimitError) as caught:
        client.embed(["hello"])
    assert caught.value.limit == limit
    assert caught.value.code == code
    assert len(service.seen) == 2  # still retried after backing off
