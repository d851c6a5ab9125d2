"""What goes over the wire: URLs, headers and the exact bodies of both dialects."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests._core_fakes import (
    KEY,
    FakeService,
    MakeAsyncClient,
    MakeClient,
    png_bytes,
    text_vector,
    vector_for,
)
from tongyi_vision import Image, MultiImage, Video


def test_openai_text_batch_is_a_list_of_strings(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    result = client.embed(["a red bicycle", "一辆红色自行车"])

    assert len(service.seen) == 1
    request = service.seen[0].request
    assert request.method == "POST"
    assert str(request.url) == "https://api.empiriolabs.ai/v1/embeddings"
    assert service.seen[0].body == {
        "model": "tongyi-embedding-vision-flash",
        "input": ["a red bicycle", "一辆红色自行车"],
    }
    assert result.vectors == [text_vector("a red bicycle"), text_vector("一辆红色自行车")]


def test_openai_media_batch_is_a_native_part_list(
    make_client: MakeClient, service: FakeService
) -> None:
    data = png_bytes()
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    client = make_client(service)
    client.embed(
        [
            Image("https://example.com/bike.png"),
            Image(data),
            MultiImage(["https://example.com/a.jpg", "https://example.com/b.jpg"]),
            Video("https://example.com/clip.mp4"),
        ]
    )

    assert [s.body for s in service.seen] == [
        {
            "model": "tongyi-embedding-vision-flash",
            "input": {
                "contents": [
                    {"image": "https://example.com/bike.png"},
                    {"image": uri},
                    {"multi_images": ["https://example.com/a.jpg", "https://example.com/b.jpg"]},
                    {"video": "https://example.com/clip.mp4"},
                ]
            },
        }
    ]


def test_openai_dialect_sends_no_dimension(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service, dimension=768)
    client.embed(["x"])
    assert service.seen[0].body == {"model": "tongyi-embedding-vision-flash", "input": ["x"]}


def test_native_body_always_uses_contents_and_sends_the_dimension() -> None:
    service = FakeService(dialect="dashscope", dimension=256)
    transport = httpx.MockTransport(service)
    from tongyi_vision import Client

    with Client(
        api_key=KEY,
        dialect="dashscope",
        model="tongyi-embedding-vision-plus",
        dimension=256,
        http_client=httpx.Client(transport=transport),
    ) as client:
        result = client.embed(["only text", "more text"])

    request = service.seen[0].request
    assert str(request.url) == (
        "https://dashscope-intl.aliyuncs.com"
        "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
    )
    assert service.seen[0].body == {
        "model": "tongyi-embedding-vision-plus",
        "input": {"contents": [{"text": "only text"}, {"text": "more text"}]},
        "parameters": {"dimension": 256},
    }
    assert result.vectors[1] == vector_for({"text": "more text"}, 256)
    assert result.dimension == 256


def test_native_body_without_dimension_has_no_parameters(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, dialect="dashscope")
    client.embed(["t", Image("https://example.com/i.png")])
    bodies = [s.body for s in service.seen]
    assert {"model": "tongyi-embedding-vision-flash", "input": {"contents": [{"text": "t"}]}} in (
        bodies
    )
    assert {
        "model": "tongyi-embedding-vision-flash",
        "input": {"contents": [{"image": "https://example.com/i.png"}]},
    } in bodies
    assert len(bodies) == 2


def test_headers_carry_the_key_and_the_callers_defaults(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(
        service,
        default_headers={"X-Team": "search", "authorization": "Bearer someone-else"},
    )
    client.embed(["x"])
    headers = service.seen[0].request.headers
    assert headers.get_list("authorization") == [f"Bearer {KEY}"]
    assert headers["x-team"] == "search"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("tongyi-vision/")


def test_base_url_and_model_from_arguments(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(
        service, base_url="http://127.0.0.1:9/gateway/", model="tongyi-embedding-vision-plus"
    )
    service.dimension = 1152
    result = client.embed(["x"])
    assert str(service.seen[0].request.url) == "http://127.0.0.1:9/gateway/v1/embeddings"
    assert service.seen[0].body["model"] == "tongyi-embedding-vision-plus"
    assert len(result.vectors[0]) == 1152


async def test_async_client_sends_the_same_bodies(
    make_async_client: MakeAsyncClient, service: FakeService
) -> None:
    client = make_async_client(service)
    result = await client.embed(["a", Image("https://example.com/x.png")])
    bodies = sorted((s.body for s in service.seen), key=lambda b: isinstance(b["input"], dict))
    assert bodies == [
        {"model": "tongyi-embedding-vision-flash", "input": ["a"]},
        {
            "model": "tongyi-embedding-vision-flash",
            "input": {"contents": [{"image": "https://example.com/x.png"}]},
        },
    ]
    assert result.vectors == [text_vector("a"), vector_for({"image": "https://example.com/x.png"})]
    assert service.seen[0].request.headers["authorization"] == f"Bearer {KEY}"


async def test_async_client_accepts_an_async_handler(
    make_async_client: MakeAsyncClient, service: FakeService
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return service(request)

    client = make_async_client(handler)
    result = await client.embed_texts(["one", "two"])
    assert result.vectors == [text_vector("one"), text_vector("two")]


def test_shorthands_build_the_right_parts(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    client.embed_texts(["hello"])
    client.embed_images(["https://example.com/a.png", png_bytes()])
    client.embed_videos(["https://example.com/v.mp4"])
    sent = service.parts_sent
    assert sent[0] == {"text": "hello"}
    assert sent[1] == {"image": "https://example.com/a.png"}
    assert sent[2]["image"].startswith("data:image/png;base64,")
    assert sent[3] == {"video": "https://example.com/v.mp4"}


def test_empty_call_sends_nothing(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    result = client.embed([])
    assert result.vectors == []
    assert service.seen == []


def test_url_schemes_are_case_insensitive(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    client.embed([Image("HTTPS://example.com/A.png"), Video("Http://example.com/v.mp4")])
    assert service.parts_sent == [
        {"image": "HTTPS://example.com/A.png"},
        {"video": "Http://example.com/v.mp4"},
    ]


def test_network_sockets_stay_blocked(pytestconfig: pytest.Config) -> None:
    import socket

    from pytest_socket import SocketBlockedError

    if not pytestconfig.getoption("--disable-socket"):
        pytest.skip("run with --disable-socket, as the unit-test command does")
    # pytest-socket warns as it refuses
    with pytest.warns(UserWarning, match="socket"), pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
