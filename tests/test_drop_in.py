"""What a framework user hands the core: content blocks as parts, raw base64 images in
text methods, and clients that keep working after ``close()``."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from tests._core_fakes import KEY, FakeService, MakeClient, png_bytes, text_vector, vector_for
from tongyi_vision import (
    APIStatusError,
    AsyncClient,
    Client,
    ConfigurationError,
    InputError,
    UnsupportedMediaError,
)
from tongyi_vision.media import references
from tongyi_vision.media.sources import data_uri

PNG = png_bytes(8, 6, (200, 30, 30))
B64 = base64.b64encode(PNG).decode("ascii")
PNG_URI = data_uri("image/png", PNG)


# --- content blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "sent"),
    [
        ({"type": "image", "base64": B64, "mime_type": "image/png"}, {"image": PNG_URI}),
        ({"type": "image", "base64": B64}, {"image": PNG_URI}),  # the type is sniffed
        (
            {"type": "image", "url": "https://example.com/a.png"},
            {"image": "https://example.com/a.png"},
        ),
        ({"type": "image", "url": PNG_URI}, {"image": PNG_URI}),
        # the older form, with source_type and data
        (
            {"type": "image", "source_type": "base64", "data": B64, "mime_type": "image/png"},
            {"image": PNG_URI},
        ),
        (
            {"type": "image", "source_type": "url", "url": "https://example.com/b.jpg"},
            {"image": "https://example.com/b.jpg"},
        ),
        # OpenAI's chat form
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}},
            {"image": "https://example.com/c.png"},
        ),
        (
            {"type": "video", "url": "https://example.com/v.mp4"},
            {"video": "https://example.com/v.mp4"},
        ),
        ({"type": "text", "text": "a red bicycle"}, {"text": "a red bicycle"}),
    ],
)
def test_a_content_block_is_the_part_it_describes(
    make_client: MakeClient, block: dict[str, Any], sent: dict[str, str]
) -> None:
    service = FakeService(dialect="dashscope")
    result = make_client(service, dialect="dashscope").embed([block])
    assert service.parts_sent == [sent]
    assert result.vectors == [vector_for(sent)]


def test_a_block_and_the_same_image_otherwise_given_are_sent_once(
    make_client: MakeClient,
) -> None:
    from tongyi_vision import Image

    service = FakeService(dialect="dashscope")
    block = {"type": "image", "base64": B64, "mime_type": "image/png"}
    result = make_client(service, dialect="dashscope").embed([block, Image(PNG), dict(block)])
    assert service.parts_sent == [{"image": PNG_URI}]
    assert result.vectors[0] == result.vectors[1] == result.vectors[2]


@pytest.mark.parametrize(
    ("block", "error", "words"),
    [
        ({"type": "image", "file_id": "file-123"}, UnsupportedMediaError, "file id"),
        ({"type": "image", "base64": "not base64!!"}, UnsupportedMediaError, "not valid base64"),
        ({"type": "image"}, InputError, "neither a url nor base64"),
        ({"type": "audio", "base64": B64}, InputError, "type 'audio' cannot be embedded"),
        ({"text": "no type"}, InputError, "type None cannot be embedded"),
        ({"type": "text", "text": 42}, InputError, "needs a 'text' string"),
    ],
)
def test_a_bad_block_is_refused_before_sending(
    make_client: MakeClient,
    service: FakeService,
    block: dict[str, Any],
    error: type[InputError],
    words: str,
) -> None:
    with pytest.raises(error, match=words) as caught:
        make_client(service).embed(["fine", block])
    assert caught.value.part_index == 1
    assert service.seen == []
    assert B64 not in str(caught.value)  # the block's data is never echoed


def test_a_single_block_is_not_taken_for_a_list_of_parts(make_client: MakeClient) -> None:
    with pytest.raises(InputError, match="wrap a single part in a list"):
        make_client(FakeService()).embed({"type": "text", "text": "hi"})


def test_a_long_text_block_is_split_like_a_long_string(
    make_client: MakeClient, service: FakeService
) -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    result = make_client(service).embed([{"type": "text", "text": text}])
    assert result.usage.pieces == len(service.parts_sent) > 1


def test_a_resume_takes_equal_blocks_for_the_same_parts(
    make_client: MakeClient, service: FakeService
) -> None:
    from tests._core_fakes import error_response

    service.script[1] = lambda seen: error_response(403, code="AccessDenied")
    client = make_client(service, max_parts_per_request=1, max_concurrency=1)
    parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    with pytest.raises(APIStatusError) as caught:
        client.embed(parts)
    partial = caught.value.partial
    again = [dict(p) for p in parts]  # equal, not the same objects
    result = client.embed(again, resume=partial)
    assert result.vectors == [text_vector("one"), text_vector("two")]


# --- one rule for media references in text methods ------------------------------------------


def test_raw_base64_of_an_image_is_that_image_in_text_methods_too() -> None:
    part = references.text_or_media(B64)
    assert part.__class__.__name__ == "Image"
    assert references.image_input(B64).source == part.source  # type: ignore[union-attr]
    # base64 that decodes to something that is not an image stays text, and so do words
    not_image = base64.b64encode(b"just some bytes, not a picture").decode()
    assert references.text_or_media(not_image) == not_image
    assert references.text_or_media("Base64EncodedWordsLikeThis") == "Base64EncodedWordsLikeThis"


def test_a_query_that_is_a_file_uri_reads_nothing_unless_asked(tmp_path: Any) -> None:
    from tongyi_vision.media.sources import file_uri

    picture = tmp_path / "red.png"
    picture.write_bytes(PNG)
    uri = file_uri(picture)
    with pytest.raises(InputError, match="read_query_files=True"):
        references.query_part(uri, read_files=False)
    assert references.query_part(uri, read_files=True).__class__.__name__ == "Image"
    mention = f"show me {uri}"
    assert references.query_part(mention, read_files=False) == mention


@pytest.mark.parametrize("query", ["cat.jpg", "photos/red.PNG", "/srv/talks/keynote.mp4"])
def test_a_query_that_is_a_media_path_is_refused_without_touching_the_disk(
    query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    def no_disk(*_: object, **__: object) -> bool:
        raise AssertionError("the disk was probed")

    monkeypatch.setattr(os.path, "exists", no_disk)
    monkeypatch.setattr(os.path, "isfile", no_disk)
    with pytest.raises(InputError, match="the path of an image or video file"):
        references.query_part(query, read_files=False)


def test_with_read_files_a_media_path_query_is_that_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "red.png").write_bytes(PNG)
    monkeypatch.chdir(tmp_path)
    assert references.query_part("red.png", read_files=True).__class__.__name__ == "Image"
    with pytest.raises(InputError):  # named like a picture, and missing: said, not embedded
        references.query_part("gone.png", read_files=True)
    # words around a file name make it text, and so does any URL
    for text in ("a photo of red.png", "https://example.com/red.png", "red png"):
        assert references.query_part(text, read_files=False) == text


# --- clients keep working after close() ----------------------------------------------------


def test_a_client_reopens_its_connections_after_close(
    monkeypatch: pytest.MonkeyPatch, service: FakeService
) -> None:
    opened: list[httpx.Client] = []

    def open_sync(*_: object) -> httpx.Client:
        http = httpx.Client(transport=httpx.MockTransport(service))
        opened.append(http)
        return http

    monkeypatch.setattr("tongyi_vision.engine.client.open_sync", open_sync)
    with Client(KEY) as client:
        assert client.embed(["one"]).vectors == [text_vector("one")]
    assert opened[0].is_closed
    assert client.embed(["two"]).vectors == [text_vector("two")]
    client.close()
    assert client.embed(["three"]).vectors == [text_vector("three")]
    assert len(opened) == 3
    client.close()


def test_a_closed_http_client_of_the_callers_is_a_typed_error(service: FakeService) -> None:
    http = httpx.Client(transport=httpx.MockTransport(service))
    client = Client(KEY, http_client=http)
    http.close()
    with pytest.raises(ConfigurationError, match="has been closed"):
        client.embed(["x"])
    assert service.seen == []


def test_an_async_client_reopens_after_aclose_and_refuses_a_closed_given_one(
    monkeypatch: pytest.MonkeyPatch, service: FakeService
) -> None:
    real = httpx.AsyncClient
    made: list[httpx.AsyncClient] = []

    def factory(**options: Any) -> httpx.AsyncClient:
        http = real(transport=httpx.MockTransport(service))
        made.append(http)
        return http

    async def run() -> list[list[float]]:
        client = AsyncClient(KEY)
        async with client:
            first = (await client.embed(["one"])).vectors
        second = (await client.embed(["two"])).vectors
        await client.aclose()
        given = real(transport=httpx.MockTransport(service))
        await given.aclose()
        with pytest.raises(ConfigurationError, match="has been closed"):
            await AsyncClient(KEY, http_client=given).embed(["x"])
        return first + second

    monkeypatch.setattr(httpx, "AsyncClient", factory)
    vectors = asyncio.run(run())
    assert vectors == [text_vector("one"), text_vector("two")]
    assert len(made) == 2
