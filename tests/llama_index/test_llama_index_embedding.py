"""TongyiVisionEmbedding against a fake service: what goes over the wire, how batches map
to core calls, bounded async concurrency, and where the key must never appear."""

from __future__ import annotations

import base64
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core import Document
from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.schema import ImageNode, MetadataMode, TextNode

from tests.llama_index._llama_index_fakes import (
    KEY,
    FakeService,
    part_vector,
    png_bytes,
    write_image,
)
from tongyi_vision import BadRequestError, ConfigurationError, InputError, file_uri
from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding

MakeEmbedding = Callable[..., TongyiVisionEmbedding]
FLASH = "tongyi-embedding-vision-flash"


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class CountingClient:
    """Wraps a core client's ``embed`` to count the calls the adapter makes."""

    def __init__(self, embedding: TongyiVisionEmbedding) -> None:
        self.sizes: list[int] = []
        client = embedding._client
        original = client.embed

        def embed(parts: Any, **kwargs: Any) -> Any:
            self.sizes.append(len(parts))
            return original(parts, **kwargs)

        client.embed = embed  # type: ignore[method-assign]


# --- what goes over the wire ---


def test_query_and_text_go_as_text_with_the_key(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()

    query = embedding.get_query_embedding("a red circle")
    text = embedding.get_text_embedding("a blue square")

    assert [b["input"] for b in service.bodies] == [["a red circle"], ["a blue square"]]
    assert {b["model"] for b in service.bodies} == {FLASH}
    assert service.requests[0].url == "https://api.empiriolabs.ai/v1/embeddings"
    assert service.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert query == part_vector({"text": "a red circle"})
    assert text == part_vector({"text": "a blue square"})


def test_every_image_form_reaches_the_service_in_its_form(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    embedding = make_embedding()
    red, blue, green = png_bytes((255, 0, 0)), png_bytes((0, 0, 255)), png_bytes((0, 255, 0))
    path = tmp_path / "red.png"
    path.write_bytes(red)
    url = "https://example.com/cat.jpg"

    vectors = embedding.get_image_embedding_batch(
        [str(path), url, data_uri(blue), io.BytesIO(green), path]  # type: ignore[list-item]
    )

    assert service.contents == [
        {"image": data_uri(red)},  # the file, read and sent inline
        {"image": url},  # the service downloads URLs itself
        {"image": data_uri(blue)},  # a data URI goes unchanged
        {"image": data_uri(green)},
    ]  # the path object names the same file as the first: the core sends it once
    assert vectors[0] == vectors[4] == part_vector({"image": data_uri(red)})
    assert vectors[1] == part_vector({"image": url})
    assert vectors[3] == part_vector({"image": data_uri(green)})


def test_a_bytesio_read_before_is_embedded_whole(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()
    buffer = io.BytesIO(png_bytes((9, 9, 9)))
    buffer.read()  # LlamaIndex hands the same buffer around; its position must not matter

    vector = embedding.get_image_embedding(buffer)

    assert vector == part_vector({"image": data_uri(buffer.getvalue())})


def test_video_methods_send_video_parts(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()
    urls = ["https://example.com/a.mp4", "https://example.com/b.mp4"]

    one = embedding.get_video_embedding(urls[0])
    both = embedding.get_video_embedding_batch(urls)

    assert service.contents == [{"video": urls[0]}, {"video": urls[0]}, {"video": urls[1]}]
    assert one == both[0] == part_vector({"video": urls[0]})


async def test_async_video_methods_send_video_parts(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()

    one = await embedding.aget_video_embedding("https://example.com/a.mp4")
    batch = await embedding.aget_video_embedding_batch(["https://example.com/b.mp4"])

    assert one == part_vector({"video": "https://example.com/a.mp4"})
    assert batch == [part_vector({"video": "https://example.com/b.mp4"})]


def test_an_image_node_pointing_at_a_video_is_embedded_as_video(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video

    video = generate_sample_video(tmp_path / "clip.mp4", seconds=2.0)
    embedding = make_embedding()

    embedding.get_image_embedding(str(video))

    (content,) = service.contents
    assert list(content) == ["multi_images"]  # frames sampled from the video: one vector


def test_a_file_uri_with_a_time_range_is_embedded_as_that_clip(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video

    video = generate_sample_video(tmp_path / "two.mp4", seconds=4.0, segment_seconds=2.0)
    embedding = make_embedding()
    uri = file_uri(str(video))

    first, second = embedding.get_image_embedding_batch([f"{uri}#t=0,2", f"{uri}#t=2,4"])

    assert [list(c) for c in service.contents] == [["multi_images"], ["multi_images"]]
    assert service.contents[0] != service.contents[1]  # frames from different moments
    assert first != second


def test_dashscope_dialect_reads_its_key_and_sends_the_dimension(
    service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-dashscope-from-env")
    http = httpx.Client(transport=httpx.MockTransport(service.answer))
    embedding = TongyiVisionEmbedding(dialect="dashscope", dimension=256, http_client=http)

    vector = embedding.get_text_embedding("hello")

    assert embedding.dialect == "dashscope"
    assert service.requests[0].headers["authorization"] == "Bearer sk-dashscope-from-env"
    assert service.bodies[0] == {
        "model": FLASH,
        "input": {"contents": [{"text": "hello"}]},
        "parameters": {"dimension": 256},
    }
    assert len(vector) == 256


def test_without_a_key_construction_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="EMPIRIOLABS_API_KEY"):
        TongyiVisionEmbedding()


def test_service_errors_are_raised_not_swallowed(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    service.status = 400
    embedding = make_embedding(max_retries=0)

    with pytest.raises(BadRequestError, match="refused by the fake"):
        embedding.get_text_embedding_batch(["a", "b"])


def test_a_missing_image_file_is_refused_before_any_request(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    embedding = make_embedding()

    with pytest.raises(InputError, match="not found"):
        embedding.get_image_embedding_batch([str(tmp_path / "missing.png")])
    assert service.requests == []


# --- batches: one core call per batch method, whatever embed_batch_size says ---


def test_a_text_batch_is_one_core_call_split_into_requests_by_the_core(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()
    counter = CountingClient(embedding)
    texts = [f"text number {i}" for i in range(50)]

    vectors = embedding.get_text_embedding_batch(texts)

    assert counter.sizes == [50]
    assert sorted(len(b["input"]) for b in service.bodies) == [10, 20, 20]  # 20 parts a request
    assert vectors == [part_vector({"text": t}) for t in texts]


def test_an_image_batch_is_one_core_call_whatever_embed_batch_size_says(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    embedding = make_embedding(embed_batch_size=8)
    counter = CountingClient(embedding)
    paths = [str(write_image(tmp_path / f"{i}.png", (i * 10, 0, 0))) for i in range(20)]

    vectors = embedding.get_image_embedding_batch(paths)  # type: ignore[arg-type]

    assert counter.sizes == [20]
    assert sorted(len(b["input"]["contents"]) for b in service.bodies) == [4, 8, 8]  # packed
    assert len(vectors) == 20
    assert len({v[0] for v in vectors}) == 20  # every image its own vector, in order
    assert vectors[5] == part_vector({"image": data_uri(Path(paths[5]).read_bytes())})


async def test_async_calls_use_the_async_client(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    embedding = make_embedding()
    sync_requests = CountingClient(embedding)

    query = await embedding.aget_query_embedding("q")
    text = await embedding.aget_text_embedding("t")
    image = await embedding.aget_image_embedding(data_uri(png_bytes((1, 2, 3))))
    texts = await embedding.aget_text_embedding_batch(["x", "y"])

    assert sync_requests.sizes == []  # nothing went through the blocking client
    assert query == part_vector({"text": "q"})
    assert text == part_vector({"text": "t"})
    assert image == part_vector({"image": data_uri(png_bytes((1, 2, 3)))})
    assert texts == [part_vector({"text": "x"}), part_vector({"text": "y"})]


async def test_async_image_batches_stay_within_max_concurrency(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    # 40 images in batches of 16: requests of 8, 8 | 8, 8 | 8. The gate holds
    # requests until 3 meet, which must never happen.
    service.gather = 3
    embedding = make_embedding(max_concurrency=2, embed_batch_size=16)
    images = [data_uri(png_bytes((i, 100, 200))) for i in range(40)]

    vectors = await embedding.aget_image_embedding_batch(images)  # type: ignore[arg-type]

    assert service.max_in_flight == 2  # concurrent, and never more than allowed
    assert len(service.requests) == 5
    assert vectors == [part_vector({"image": image}) for image in images]


async def test_async_text_batches_stay_within_max_concurrency(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    service.gather = 3
    embedding = make_embedding(max_concurrency=2, embed_batch_size=40)
    texts = [f"sentence {i}" for i in range(120)]

    vectors = await embedding.aget_text_embedding_batch(texts)

    assert service.max_in_flight == 2
    assert len(service.requests) == 6  # one core call: six requests of 20 texts
    assert vectors == [part_vector({"text": t}) for t in texts]


async def test_async_batch_progress_bar_reaches_the_total(
    make_embedding: MakeEmbedding, capsys: pytest.CaptureFixture[str]
) -> None:
    embedding = make_embedding(embed_batch_size=30)

    await embedding.aget_text_embedding_batch([f"t{i}" for i in range(70)], show_progress=True)

    assert "70/70" in capsys.readouterr().err


def test_usage_sums_every_call(make_embedding: MakeEmbedding) -> None:
    embedding = make_embedding()

    embedding.get_text_embedding_batch(["a", "b", "c"])
    embedding.get_query_embedding("d")

    assert embedding.usage.requests == 2
    assert embedding.usage.prompt_tokens == 16


# --- the key stays secret ---


def test_key_is_absent_from_dict_json_repr_and_payload(make_embedding: MakeEmbedding) -> None:
    embedding = make_embedding(default_headers={"X-Gateway-Token": "hdr-secret-42"})

    for text in (
        str(embedding.to_dict()),
        embedding.to_json(),
        repr(embedding),
        str(embedding),
        str(embedding.to_payload()),
        str(embedding.model_dump()),
    ):
        assert KEY not in text
        assert "hdr-secret-42" not in text
    assert embedding.to_dict()["class_name"] == "TongyiVisionEmbedding"
    assert embedding.api_key is not None
    assert embedding.api_key.get_secret_value() == KEY


def test_key_is_absent_from_callback_and_instrumentation_events(
    service: FakeService, tmp_path: Path
) -> None:
    debug = LlamaDebugHandler()
    seen: list[str] = []

    class Recorder(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "Recorder"

        def handle(self, event: Any, **kwargs: Any) -> None:
            seen.append(repr(event))

    recorder = Recorder()
    dispatcher = get_dispatcher()  # the root: events of every module reach it
    dispatcher.add_event_handler(recorder)
    http = httpx.Client(transport=httpx.MockTransport(service.answer))
    try:
        embedding = TongyiVisionEmbedding(
            api_key=KEY, http_client=http, callback_manager=CallbackManager([debug])
        )
        embedding.get_text_embedding_batch(["hello"])
        embedding.get_query_embedding("hello")
        embedding.get_image_embedding_batch([data_uri(png_bytes((3, 3, 3)))])
    finally:
        dispatcher.event_handlers.remove(recorder)

    events = debug.get_events()
    assert len(events) == 6  # start and end of three embedding events
    assert seen  # instrumentation events were emitted
    assert KEY not in repr(events)
    assert KEY not in "".join(seen)


def test_reloaded_from_json_reads_the_key_from_the_environment(
    make_embedding: MakeEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedding = make_embedding(max_concurrency=3, base_url="http://127.0.0.1:9")
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-from-environment")

    reloaded = TongyiVisionEmbedding.from_json(embedding.to_json())

    assert reloaded.api_key is not None
    assert reloaded.api_key.get_secret_value() == "sk-from-environment"
    assert reloaded.max_concurrency == 3
    assert reloaded.base_url == "http://127.0.0.1:9"
    assert reloaded._client.max_concurrency == 3
    reloaded.close()


def test_pickle_carries_settings_but_not_the_key(
    make_embedding: MakeEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedding = make_embedding(model_name="tongyi-embedding-vision-plus", max_retries=5)

    data = pickle.dumps(embedding)
    assert KEY.encode() not in data

    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-in-the-worker")
    copy = pickle.loads(data)
    assert copy.model_name == "tongyi-embedding-vision-plus"
    assert copy.max_retries == 5
    assert copy.api_key.get_secret_value() == "sk-in-the-worker"
    copy.close()

    monkeypatch.delenv("EMPIRIOLABS_API_KEY")
    with pytest.raises(ConfigurationError, match="EMPIRIOLABS_API_KEY"):
        pickle.loads(data)


def test_settings_come_from_the_environment_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    monkeypatch.setenv("TONGYI_VISION_MODEL", "tongyi-embedding-vision-plus")
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "http://127.0.0.1:8/")

    embedding = TongyiVisionEmbedding()
    monkeypatch.setenv("TONGYI_VISION_MODEL", "something-else")

    assert embedding.model_name == "tongyi-embedding-vision-plus"
    assert embedding.base_url == "http://127.0.0.1:8"
    assert embedding.to_payload()["dimension"] == 1152
    assert embedding.class_name() == "TongyiVisionEmbedding"
    embedding.close()


# --- as a transformation of an ingestion pipeline ---


def test_a_pipeline_embeds_image_nodes_as_images_and_texts_as_text(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    embedding = make_embedding()
    red, blue = png_bytes((200, 0, 0)), png_bytes((0, 0, 200))
    path = tmp_path / "red.png"
    path.write_bytes(red)
    (from_reader,) = TongyiImageReader().load_data(path)
    inline = ImageNode(image=base64.b64encode(blue).decode())
    linked = ImageNode(image_url="https://example.com/cat.jpg")
    text = TextNode(text="a red circle")

    nodes = IngestionPipeline(transformations=[embedding]).run(
        nodes=[from_reader, text, inline, linked]
    )

    assert [n.embedding for n in nodes] == [
        part_vector({"image": data_uri(red)}),  # the image, not "file_name: red.png"
        part_vector({"text": text.get_content(metadata_mode=MetadataMode.EMBED)}),
        part_vector({"image": data_uri(blue)}),
        part_vector({"image": "https://example.com/cat.jpg"}),  # the service fetches it
    ]


async def test_an_async_pipeline_embeds_image_nodes_as_images(
    make_embedding: MakeEmbedding, service: FakeService, tmp_path: Path
) -> None:
    embedding = make_embedding()
    path = write_image(tmp_path / "green.png", (0, 200, 0))
    documents = [*TongyiImageReader().load_data(path), Document(text="some words")]

    nodes = await IngestionPipeline(transformations=[embedding]).arun(documents=documents)

    assert nodes[0].embedding == part_vector({"image": data_uri(path.read_bytes())})
    assert nodes[1].embedding == part_vector({"text": "some words"})


def test_an_image_node_with_bad_base64_is_a_typed_error_before_any_request(
    make_embedding: MakeEmbedding, service: FakeService
) -> None:
    from llama_index.core.schema import ImageNode

    from tongyi_vision import UnsupportedMediaError

    node = ImageNode(image="this is not base64!", id_="broken")
    with pytest.raises(UnsupportedMediaError, match="not valid base64") as caught:
        make_embedding()([node])
    assert "broken" in str(caught.value)
    assert service.requests == []
