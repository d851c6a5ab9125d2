"""Settings: argument, then environment, then default, resolved when a client is made."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tongyi_vision import AsyncClient, Client, ConfigurationError


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError("these tests send nothing")


def make(**options: Any) -> Client:
    return Client(http_client=httpx.Client(transport=httpx.MockTransport(never_called)), **options)


def test_key_from_empiriolabs_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-from-env")
    client = make()
    assert client._settings.api_key.get() == "sk-from-env"
    assert client.dialect == "openai"
    assert client.base_url == "https://api.empiriolabs.ai"
    assert client.model == "tongyi-embedding-vision-flash"
    assert client.dimension == 768


def test_dashscope_dialect_reads_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-gateway")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-native")
    client = make(dialect="dashscope")
    assert client._settings.api_key.get() == "sk-native"
    assert client.base_url == "https://dashscope-intl.aliyuncs.com"


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-env")
    monkeypatch.setenv("TONGYI_VISION_MODEL", "tongyi-embedding-vision-plus")
    client = make(api_key="sk-arg", model="tongyi-embedding-vision-flash")
    assert client._settings.api_key.get() == "sk-arg"
    assert client.model == "tongyi-embedding-vision-flash"


def test_base_url_model_and_dialect_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-native")
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "https://dashscope.aliyuncs.com/")
    monkeypatch.setenv("TONGYI_VISION_MODEL", "tongyi-embedding-vision-plus")
    monkeypatch.setenv("TONGYI_VISION_DIALECT", "dashscope")
    client = make()
    assert client.dialect == "dashscope"
    assert client.base_url == "https://dashscope.aliyuncs.com"
    assert client.model == "tongyi-embedding-vision-plus"
    assert client.dimension == 1152
    assert client._url.endswith(
        "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
    )


def test_environment_is_read_at_construction_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-first")
    first = make()
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-second")
    second = make()
    assert first._settings.api_key.get() == "sk-first"
    assert second._settings.api_key.get() == "sk-second"


@pytest.mark.parametrize(
    ("dialect", "variable"), [(None, "EMPIRIOLABS_API_KEY"), ("dashscope", "DASHSCOPE_API_KEY")]
)
def test_missing_key_names_the_variable(dialect: str, variable: str) -> None:
    with pytest.raises(ConfigurationError, match=f"set {variable}") as caught:
        make(dialect=dialect)
    assert isinstance(caught.value, ValueError)


def test_missing_key_for_the_async_client_too() -> None:
    with pytest.raises(ConfigurationError, match="EMPIRIOLABS_API_KEY"):
        AsyncClient()


def test_unknown_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGYI_VISION_DIALECT", "grpc")
    with pytest.raises(ConfigurationError, match=r"'grpc'.*TONGYI_VISION_DIALECT"):
        make(api_key="k")


def test_base_url_needs_a_scheme() -> None:
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        make(api_key="k", base_url="api.example.com")


def test_openai_dialect_refuses_another_dimension() -> None:
    with pytest.raises(ConfigurationError, match="fixes tongyi-embedding-vision-flash at 768"):
        make(api_key="k", dimension=512)
    assert make(api_key="k", dimension=768).dimension == 768


@pytest.mark.parametrize(
    ("model", "dimension"),
    [
        ("tongyi-embedding-vision-flash", 64),
        ("tongyi-embedding-vision-flash", 768),
        ("tongyi-embedding-vision-plus", 1024),
        ("tongyi-embedding-vision-plus-2026-03-06", 128),
        ("tongyi-embedding-vision-plus-2026-03-06", 300),
    ],
)
def test_native_dialect_takes_the_models_dimensions(model: str, dimension: int) -> None:
    client = make(api_key="k", dialect="dashscope", model=model, dimension=dimension)
    assert client.dimension == dimension


@pytest.mark.parametrize(
    ("model", "dimension"),
    [("tongyi-embedding-vision-flash", 1024), ("tongyi-embedding-vision-plus", 768)],
)
def test_native_dialect_refuses_other_dimensions(model: str, dimension: int) -> None:
    with pytest.raises(ConfigurationError, match=f"not {dimension}"):
        make(api_key="k", dialect="dashscope", model=model, dimension=dimension)


@pytest.mark.parametrize("bad", [0, -64, 12.5, True, "768"])
def test_dimension_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="positive int"):
        make(api_key="k", dialect="dashscope", dimension=bad)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_retries", -1),
        ("max_concurrency", 0),
        ("max_parts_per_request", 0),
        ("max_request_tokens", 0),
        ("max_request_bytes", 10),
        ("max_concurrency", 2.5),
    ],
)
def test_numeric_options_are_checked(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        make(api_key="k", **{option: value})


def test_close_releases_only_what_the_client_opened() -> None:
    http = httpx.Client(transport=httpx.MockTransport(never_called))
    with Client(api_key="k", http_client=http):
        pass
    assert not http.is_closed
    http.close()
    client = Client(api_key="k")
    with client:
        pass
    assert client._http.is_closed


async def test_async_close_releases_only_what_the_client_opened() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(never_called))
    async with AsyncClient(api_key="k", http_client=http):
        pass
    assert not http.is_closed
    await http.aclose()
    client = AsyncClient(api_key="k")
    async with client:
        opened = (await client._pool()).http  # the running loop's connections
    assert opened.is_closed


def test_a_key_with_a_trailing_newline_is_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-from-file\n")
    assert make()._settings.api_key.get() == "sk-from-file"
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "  \n")
    with pytest.raises(ConfigurationError, match="EMPIRIOLABS_API_KEY"):
        make()
