"""TongyiVisionEmbeddings against a fake gateway: what goes over the wire, what comes back."""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.load import dumpd, dumps, loads

from tests.langchain._langchain_fakes import KEY, FakeGateway, png_bytes, vector_for, write_image
from tongyi_vision import (
    AuthenticationError,
    ConfigurationError,
    InputError,
    MediaNotFoundError,
    MissingDependencyError,
    UnsupportedMediaError,
    file_uri,
)
from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings

Make = Callable[..., TongyiVisionEmbeddings]
RED = (220, 30, 40)
BLUE = (30, 70, 200)


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


# --- text and media references through embed_documents ---


def test_embed_documents_sends_media_references_as_images_and_the_rest_as_text(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", RED)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    blue = png_bytes(BLUE)
    texts = [
        "a red square",
        file_uri(str(red)),
        str(red),  # a bare path is text: only URIs are media references
        data_uri(blue),
    ]

    vectors = make_embeddings().embed_documents(texts)

    expected_contents = [
        {"text": "a red square"},
        {"image": data_uri(red.read_bytes())},
        {"text": str(red)},
        {"image": data_uri(blue)},
    ]
    assert vectors == [vector_for(c) for c in expected_contents]
    assert sorted(gateway.kinds) == ["image", "image", "text", "text"]
    # A file:// URI of a file that is no medium is refused, not embedded as its letters.
    sent = len(gateway.requests)
    with pytest.raises(UnsupportedMediaError, match="neither an image nor a video"):
        make_embeddings().embed_documents(["fine", file_uri(str(notes))])
    assert len(gateway.requests) == sent


def test_media_references_can_be_turned_off(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    uri = file_uri(str(write_image(tmp_path / "red.png", RED)))

    vectors = make_embeddings(embed_media_references=False).embed_documents([uri])

    assert gateway.contents == [{"text": uri}]
    assert vectors == [vector_for({"text": uri})]


def test_a_file_uri_of_a_missing_file_raises_before_any_request(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    with pytest.raises(MediaNotFoundError):
        make_embeddings().embed_documents(["fine", file_uri(str(tmp_path / "gone.png"))])
    assert gateway.requests == []


def test_embed_query_returns_python_floats_and_takes_media_references(
    make_embeddings: Make, tmp_path: Path
) -> None:
    embeddings = make_embeddings(read_query_files=True)
    red = write_image(tmp_path / "red.png", RED)

    text_vector = embeddings.embed_query("a red square")
    image_vector = embeddings.embed_query(file_uri(str(red)))

    assert len(text_vector) == 768
    assert all(type(x) is float for x in text_vector)
    assert text_vector == vector_for({"text": "a red square"})
    assert image_vector == vector_for({"image": data_uri(red.read_bytes())})


def test_a_query_reads_no_file_unless_asked_to(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    # Query text may come from a user: a query that is a file:// URI opens no file, and is
    # refused (never embedded as the letters of a file name); a FIFO would hang a reader.
    red = write_image(tmp_path / "red.png", RED)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    embeddings = make_embeddings()
    for query in (file_uri(str(red)), file_uri(str(fifo)), file_uri("/etc/passwd")):
        with pytest.raises(InputError, match="read_query_files=True"):
            embeddings.embed_query(query)
    assert gateway.requests == []
    # Text that merely mentions a URI is text.
    mention = f"the picture at {file_uri(str(red))}"
    assert embeddings.embed_query(mention) == vector_for({"text": mention})
    # Asked to, the query reads the file: an image query.
    reading = make_embeddings(read_query_files=True)
    assert reading.embed_query(file_uri(str(red))) == vector_for(
        {"image": data_uri(red.read_bytes())}
    )
    # A data: URI needs no file: it is an image query either way.
    assert embeddings.embed_query(data_uri(png_bytes(BLUE))) == vector_for(
        {"image": data_uri(png_bytes(BLUE))}
    )


@pytest.mark.parametrize("given", ["a string", None, 42, [1, 2]])
def test_embed_documents_takes_a_list_of_strings_only(make_embeddings: Make, given: Any) -> None:
    with pytest.raises(InputError, match="takes"):
        make_embeddings().embed_documents(given)


def test_empty_inputs_send_nothing(make_embeddings: Make, gateway: FakeGateway) -> None:
    embeddings = make_embeddings()

    assert embeddings.embed_documents([]) == []
    assert embeddings.embed_image([]) == []
    assert embeddings.embed_video([]) == []
    assert gateway.requests == []


async def test_async_empty_inputs_send_nothing(make_embeddings: Make, gateway: FakeGateway) -> None:
    embeddings = make_embeddings()

    assert await embeddings.aembed_documents([]) == []
    assert await embeddings.aembed_image([]) == []
    assert await embeddings.aembed_video([]) == []
    assert gateway.requests == []


def test_loaded_images_embed_as_images(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    write_image(tmp_path / "a.png", RED)
    write_image(tmp_path / "b.png", BLUE)
    documents = TongyiImageLoader(tmp_path).load()

    vectors = make_embeddings().embed_documents([d.page_content for d in documents])

    assert gateway.kinds == ["image", "image"]
    assert [v[0] for v in vectors] == [2.0, 2.0]
    assert vectors[0] != vectors[1]


# --- async: through the async HTTP client, requests concurrent ---


async def test_aembed_documents_runs_its_requests_concurrently(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the async methods must not use the sync client")

    gateway.gather = 3
    texts = [f"text number {i}" for i in range(60)]  # 20 parts per request: 3 requests
    async with httpx.AsyncClient(transport=httpx.MockTransport(gateway.answer_async)) as ahttp:
        embeddings = TongyiVisionEmbeddings(
            api_key=KEY,
            http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
            http_async_client=ahttp,
        )
        vectors = await embeddings.aembed_documents(texts)

    assert len(gateway.requests) == 3
    assert gateway.max_in_flight == 3
    assert vectors == [vector_for({"text": t}) for t in texts]


async def test_aembed_documents_and_query_take_media_references(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    embeddings = make_embeddings(read_query_files=True)
    uri = file_uri(str(write_image(tmp_path / "red.png", RED)))
    image = {"image": data_uri((tmp_path / "red.png").read_bytes())}

    documents = await embeddings.aembed_documents(["hello", uri])
    query = await embeddings.aembed_query(uri)

    assert documents == [vector_for({"text": "hello"}), vector_for(image)]
    assert query == vector_for(image)


async def test_concurrent_async_calls_share_one_client(
    make_embeddings: Make, gateway: FakeGateway
) -> None:
    embeddings = make_embeddings()

    results = await asyncio.gather(*(embeddings.aembed_query(f"q{i}") for i in range(5)))

    assert results == [vector_for({"text": f"q{i}"}) for i in range(5)]
    assert embeddings.usage.requests == 5


# --- embed_image: Chroma's protocol ---


def test_embed_image_takes_paths_uris_and_raw_base64(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", RED)
    blue = png_bytes(BLUE)
    raw = base64.b64encode(blue).decode()
    wrapped = "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))
    url = "https://example.com/cat.jpg"
    uris = [str(red), file_uri(str(red)), raw, wrapped, data_uri(blue), url]

    vectors = make_embeddings().embed_image(uris)

    red_vector = vector_for({"image": data_uri(red.read_bytes())})
    blue_vector = vector_for({"image": data_uri(blue)})
    assert vectors == [
        red_vector,
        red_vector,
        blue_vector,
        blue_vector,
        blue_vector,
        vector_for({"image": url}),
    ]
    assert {"image": url} in gateway.contents  # URLs go to the service as they are


async def test_aembed_image_matches_embed_image(make_embeddings: Make, tmp_path: Path) -> None:
    embeddings = make_embeddings()
    red = str(write_image(tmp_path / "red.png", RED))
    raw = base64.b64encode(png_bytes(BLUE)).decode()

    assert await embeddings.aembed_image([red, raw]) == embeddings.embed_image([red, raw])


def test_embed_image_refuses_what_is_neither_a_file_nor_an_image(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path
) -> None:
    embeddings = make_embeddings()

    with pytest.raises(MediaNotFoundError):
        embeddings.embed_image([str(tmp_path / "missing.png")])
    with pytest.raises(InputError):
        # Valid base64, but of text: not an image, and not a path either.
        embeddings.embed_image([base64.b64encode(b"just some words here").decode()])
    assert gateway.requests == []


def test_an_existing_file_wins_over_a_base64_reading_of_its_name(
    make_embeddings: Make, gateway: FakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "abcdABCD0123wxyz"  # also valid base64 (of no image)
    write_image(tmp_path / name, RED)

    make_embeddings().embed_image([name])

    assert gateway.contents == [{"image": data_uri((tmp_path / name).read_bytes())}]


# --- embed_video ---


def test_embed_video_sends_urls_as_video_parts(make_embeddings: Make, gateway: FakeGateway) -> None:
    url = "https://example.com/clip.mp4"

    vectors = make_embeddings().embed_video([url])

    assert gateway.contents == [{"video": url}]
    assert vectors == [vector_for({"video": url})]


async def test_aembed_video_sends_urls_as_video_parts(
    make_embeddings: Make, gateway: FakeGateway
) -> None:
    url = "https://example.com/clip.mp4"

    assert await make_embeddings().aembed_video([url]) == [vector_for({"video": url})]
    assert gateway.contents == [{"video": url}]


# --- configuration ---


def test_the_key_is_read_from_the_environment_of_the_dialect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-gateway")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-native")

    gateway = TongyiVisionEmbeddings()
    native = TongyiVisionEmbeddings(dialect="dashscope")

    assert gateway.api_key is not None and gateway.api_key.get_secret_value() == "sk-gateway"
    assert native.api_key is not None and native.api_key.get_secret_value() == "sk-native"
    assert native.base_url == "https://dashscope-intl.aliyuncs.com"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-native")
    monkeypatch.setenv("TONGYI_VISION_DIALECT", "dashscope")
    monkeypatch.setenv("TONGYI_VISION_MODEL", "tongyi-embedding-vision-plus")
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "http://127.0.0.1:1/")

    embeddings = TongyiVisionEmbeddings()

    assert (embeddings.dialect, embeddings.model, embeddings.base_url) == (
        "dashscope",
        "tongyi-embedding-vision-plus",
        "http://127.0.0.1:1",
    )


def test_a_missing_key_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="EMPIRIOLABS_API_KEY"):
        TongyiVisionEmbeddings()
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY"):
        TongyiVisionEmbeddings(dialect="dashscope")


def test_bad_settings_are_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="dimension"):
        TongyiVisionEmbeddings(api_key=KEY, dimension=512)  # the gateway fixes 768
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        TongyiVisionEmbeddings(api_key=KEY, max_concurrency=0)
    with pytest.raises(ValueError, match="extra"):
        TongyiVisionEmbeddings(api_key=KEY, batch_size=10)


def test_native_dialect_sends_dimension_and_headers(gateway: FakeGateway) -> None:
    http = httpx.Client(transport=httpx.MockTransport(gateway.answer))
    embeddings = TongyiVisionEmbeddings(
        api_key=KEY,
        dialect="dashscope",
        dimension=256,
        default_headers={"X-Team": "search"},
        http_client=http,
    )

    embeddings.embed_query("hello")

    (request,) = gateway.requests
    assert request.url.path.endswith("/multimodal-embedding/multimodal-embedding")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Team"] == "search"
    assert b'"dimension":256' in request.content.replace(b" ", b"")
    http.close()


def test_retries_follow_max_retries() -> None:
    seen: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {}})
        return FakeGateway().answer(request)

    with httpx.Client(transport=httpx.MockTransport(flaky)) as http:
        embeddings = TongyiVisionEmbeddings(api_key=KEY, max_retries=1, http_client=http)
        assert embeddings.embed_query("hi") == vector_for({"text": "hi"})
    assert len(seen) == 2
    assert embeddings.usage.retries == 1


def test_api_errors_are_raised_typed_without_the_key() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"error": {"message": "bad key", "type": "auth", "code": "InvalidApiKey"}}
        )

    with httpx.Client(transport=httpx.MockTransport(refuse)) as http:
        embeddings = TongyiVisionEmbeddings(api_key=KEY, http_client=http)
        with pytest.raises(AuthenticationError) as caught:
            embeddings.embed_documents(["hi"])
    assert KEY not in str(caught.value)


# --- the key stays secret ---


def test_the_key_never_shows_in_repr_str_or_serialized_forms(make_embeddings: Make) -> None:
    embeddings = make_embeddings()

    assert KEY not in repr(embeddings)
    assert KEY not in str(embeddings)
    assert KEY not in dumps(embeddings)
    assert KEY not in str(dumpd(embeddings))
    assert KEY not in embeddings.model_dump_json()
    assert dumpd(embeddings)["kwargs"]["api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["EMPIRIOLABS_API_KEY"],
    }


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_serialized_embeddings_revive_with_the_key_from_a_secrets_map() -> None:
    original = TongyiVisionEmbeddings(api_key=KEY, dialect="dashscope", dimension=512)

    revived = loads(
        dumps(original),
        secrets_map={"DASHSCOPE_API_KEY": "sk-other"},
        valid_namespaces=["tongyi_vision"],
        allowed_objects=[TongyiVisionEmbeddings],
    )

    assert isinstance(revived, TongyiVisionEmbeddings)
    assert (revived.dialect, revived.dimension) == ("dashscope", 512)
    assert revived.api_key is not None and revived.api_key.get_secret_value() == "sk-other"


def test_the_key_never_shows_in_logs(
    make_embeddings: Make, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        make_embeddings().embed_documents(["hello"])

    assert caplog.records  # httpx logged the request
    assert KEY not in caplog.text


def test_embeddings_cannot_be_pickled(make_embeddings: Make) -> None:
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(make_embeddings())


def test_usage_sums_sync_and_async_calls(make_embeddings: Make) -> None:
    embeddings = make_embeddings()

    embeddings.embed_documents(["a", "b"])
    asyncio.run(embeddings.aembed_documents(["c"]))

    assert embeddings.usage.requests == 2
    assert embeddings.usage.prompt_tokens == 9


def test_the_progress_bar_counts_the_parts(
    make_embeddings: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    make_embeddings(show_progress_bar=True).embed_documents(["one", "two", "three"])

    assert "3/3" in capsys.readouterr().err


def test_without_langchain_core_the_import_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m.startswith("tongyi_vision.langchain")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "langchain_core", None)

    with pytest.raises(MissingDependencyError, match=r"tongyi-vision\[langchain\]"):
        importlib.import_module("tongyi_vision.langchain")


def test_default_headers_are_neither_shown_nor_serialized(make_embeddings: Make) -> None:
    token = "proxy-token-0123456789"
    embeddings = make_embeddings(default_headers={"X-Proxy-Token": token})
    assert token not in repr(embeddings)
    assert token not in dumps(embeddings)
    assert token not in str(dumpd(embeddings))
