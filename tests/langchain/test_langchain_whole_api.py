"""The whole API through ``TongyiVisionEmbeddings``: instructions on queries (never on
documents), the native parameters, regions, fused groups and captioned image documents; every
request body is checked exactly as it went over the wire."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.documents.base import Blob
from langchain_core.load import dumpd, dumps, loads
from langchain_core.vectorstores import InMemoryVectorStore

from tests._service_fakes import DIMENSION, FakeEmbeddingService
from tests.langchain._langchain_fakes import KEY, png_bytes, write_image
from tongyi_vision import (
    FLASH,
    FLASH_SNAPSHOT,
    ConfigurationError,
    Fused,
    Image,
    InputError,
    Video,
)
from tongyi_vision.langchain import TongyiImageLoader, TongyiImageParser, TongyiVisionEmbeddings

Make = Callable[..., TongyiVisionEmbeddings]
TASK = "Find images that match the description"
NATIVE_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
VIDEO_URL = "https://media.test/keynote.mp4"


def content_vector(content: dict[str, Any], dimension: int) -> list[float]:
    """A vector naming the whole content object (fused ones too): its hash, then zeros."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return [int.from_bytes(digest[:3], "big") / 1000.0, float(len(content))] + [0.0] * (
        dimension - 2
    )


@dataclass
class NativeFake(FakeEmbeddingService):
    """The shared fake, answering any content object (a fused one included)."""

    def vector(self, content: dict[str, Any], dimension: int) -> list[float]:
        return content_vector(content, dimension)


@pytest.fixture
def gateway() -> NativeFake:
    return NativeFake()


def snapshot(**fields: Any) -> dict[str, Any]:
    return {"model": FLASH_SNAPSHOT, "dialect": "dashscope", **fields}


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# --- instruct: queries only ------------------------------------------------------------


def test_instruct_goes_with_queries_and_never_with_documents(
    make_embeddings: Make, gateway: NativeFake
) -> None:
    embeddings = make_embeddings(**snapshot(instruct=TASK))

    embeddings.embed_documents(["a red bicycle", "a blue car"])
    query = embeddings.embed_query("red bicycle")

    assert gateway.bodies == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "a red bicycle"}, {"text": "a blue car"}]},
        },
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "red bicycle"}]},
            "parameters": {"instruct": TASK},
        },
    ]
    assert query == content_vector({"text": "red bicycle"}, DIMENSION)
    assert all(r.url.path == NATIVE_PATH for r in gateway.requests)


async def test_the_async_methods_split_instruct_the_same_way(
    make_embeddings: Make, gateway: NativeFake
) -> None:
    embeddings = make_embeddings(**snapshot(instruct=TASK))

    await embeddings.aembed_documents(["a document"])
    await embeddings.aembed_query("a query")

    assert [b.get("parameters") for b in gateway.bodies] == [None, {"instruct": TASK}]
    assert [b["input"]["contents"] for b in gateway.bodies] == [
        [{"text": "a document"}],
        [{"text": "a query"}],
    ]


def test_image_documents_and_image_queries_carry_no_instruction(
    make_embeddings: Make, gateway: NativeFake, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "red.png", (200, 0, 0))
    embeddings = make_embeddings(**snapshot(instruct=TASK))

    embeddings.embed_documents([picture.as_uri()])
    embeddings.embed_image([str(picture)])  # what similarity_search_by_image calls
    embeddings.embed_query(data_uri(png_bytes((0, 0, 200))))  # an image query

    assert [b.get("parameters") for b in gateway.bodies] == [None, None, None]
    assert [next(iter(b["input"]["contents"][0])) for b in gateway.bodies] == ["image"] * 3


def test_a_store_sends_the_instruction_with_its_query_only(
    make_embeddings: Make, gateway: NativeFake
) -> None:
    store = InMemoryVectorStore(make_embeddings(**snapshot(instruct=TASK)))
    store.add_documents([Document(page_content="a red bicycle"), Document(page_content="a car")])

    store.similarity_search("bicycle", k=1)

    assert [b.get("parameters") for b in gateway.bodies] == [None, {"instruct": TASK}]


def test_instruct_is_refused_before_sending_where_the_model_cannot_take_it(
    gateway: NativeFake,
) -> None:
    with pytest.raises(ConfigurationError, match="does not take instruct"):
        TongyiVisionEmbeddings(api_key=KEY, model=FLASH, dialect="dashscope", instruct=TASK)
    with pytest.raises(ConfigurationError, match="openai dialect"):
        TongyiVisionEmbeddings(api_key=KEY, model=FLASH_SNAPSHOT, instruct=TASK)
    assert gateway.bodies == []


# --- native parameters -------------------------------------------------------------------


def test_the_native_parameters_go_in_the_body_with_the_parts_that_take_them(
    make_embeddings: Make, gateway: NativeFake, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "green.png", (0, 200, 0))
    embeddings = make_embeddings(
        **snapshot(dimension=256, res_level=2, fps=0.5, max_video_frames=16)
    )

    vectors = embeddings.embed_documents(["a caption", picture.as_uri()])
    embeddings.embed_video([VIDEO_URL])

    by_kind = {next(iter(b["input"]["contents"][0])): b for b in gateway.bodies}
    assert by_kind["text"] == {
        "model": FLASH_SNAPSHOT,
        "input": {"contents": [{"text": "a caption"}]},
        "parameters": {"dimension": 256},
    }
    assert by_kind["image"]["parameters"] == {"dimension": 256, "res_level": 2}
    assert by_kind["image"]["input"]["contents"] == [{"image": data_uri(picture.read_bytes())}]
    assert by_kind["video"] == {
        "model": FLASH_SNAPSHOT,
        "input": {"contents": [{"video": VIDEO_URL}]},
        "parameters": {"dimension": 256, "fps": 0.5, "max_video_frames": 16},
    }
    assert [len(v) for v in vectors] == [256, 256]
    assert embeddings.dimension == 256


def test_a_snapshot_takes_any_size_in_its_range_and_refuses_others() -> None:
    embeddings = TongyiVisionEmbeddings(api_key=KEY, **snapshot(dimension=300))
    assert embeddings.dimension == 300
    embeddings.close()
    for size in (32, 769):
        with pytest.raises(ConfigurationError, match=f"not {size}"):
            TongyiVisionEmbeddings(api_key=KEY, **snapshot(dimension=size))
    with pytest.raises(ConfigurationError, match="not 300"):
        TongyiVisionEmbeddings(api_key=KEY, model=FLASH, dialect="dashscope", dimension=300)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"res_level": 4}, "res_level"),
        ({"fps": 1.5}, "fps"),
        ({"max_video_frames": 65}, "max_video_frames"),
        ({"model": FLASH, "res_level": 1}, "does not take res_level"),
        ({"model": FLASH, "max_video_frames": 8}, "does not take max_video_frames"),
        ({"dialect": "openai", "fps": 0.5}, "openai dialect"),
    ],
)
def test_parameters_out_of_range_or_for_another_model_are_refused(
    fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        TongyiVisionEmbeddings(api_key=KEY, **{**snapshot(), **fields})


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_the_parameters_are_plain_settings_that_serialize_and_revive() -> None:
    original = TongyiVisionEmbeddings(
        api_key=KEY, **snapshot(res_level=3, fps=0.25, max_video_frames=32, instruct=TASK)
    )

    kwargs = dumpd(original)["kwargs"]
    assert {k: kwargs[k] for k in ("res_level", "fps", "max_video_frames", "instruct")} == {
        "res_level": 3,
        "fps": 0.25,
        "max_video_frames": 32,
        "instruct": TASK,
    }
    revived = loads(
        dumps(original),
        secrets_map={"DASHSCOPE_API_KEY": "sk-revived"},
        valid_namespaces=["tongyi_vision"],
        allowed_objects=[TongyiVisionEmbeddings],
    )
    assert isinstance(revived, TongyiVisionEmbeddings)
    assert (revived.res_level, revived.fps, revived.max_video_frames, revived.instruct) == (
        3,
        0.25,
        32,
        TASK,
    )
    assert KEY not in dumps(original)
    original.close()
    revived.close()


# --- regions and workspaces --------------------------------------------------------------


def test_a_region_chooses_the_service_root_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "http://127.0.0.1:9")
    beijing = TongyiVisionEmbeddings(api_key=KEY, **snapshot(region="beijing"))
    workspace = TongyiVisionEmbeddings(api_key=KEY, **snapshot(workspace="ws-abc123"))
    explicit = TongyiVisionEmbeddings(
        api_key=KEY, **snapshot(region="beijing", base_url="http://127.0.0.1:7")
    )
    plain = TongyiVisionEmbeddings(api_key=KEY, **snapshot())

    assert beijing.base_url == "https://dashscope.aliyuncs.com"
    assert workspace.base_url == "https://ws-abc123.ap-southeast-1.maas.aliyuncs.com"
    assert explicit.base_url == "http://127.0.0.1:7"
    assert plain.base_url == "http://127.0.0.1:9"
    assert beijing.region == "beijing"
    for embeddings in (beijing, workspace, explicit, plain):
        embeddings.close()


def test_requests_go_to_the_regional_root(make_embeddings: Make, gateway: NativeFake) -> None:
    make_embeddings(**snapshot(region="beijing")).embed_documents(["hello"])

    (request,) = gateway.requests
    assert str(request.url) == "https://dashscope.aliyuncs.com" + NATIVE_PATH


def test_a_region_needs_the_native_dialect() -> None:
    with pytest.raises(ConfigurationError, match="dialect='dashscope'"):
        TongyiVisionEmbeddings(api_key=KEY, region="beijing")
    with pytest.raises(ConfigurationError, match="region must be"):
        TongyiVisionEmbeddings(api_key=KEY, **snapshot(region="mars"))


# --- fused groups ------------------------------------------------------------------------


def test_embed_fused_sends_one_content_object_per_group_and_returns_one_vector_each(
    make_embeddings: Make, gateway: NativeFake, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "red.png", (200, 0, 0))
    blue = png_bytes((0, 0, 200))
    embeddings = make_embeddings(**snapshot())

    vectors = embeddings.embed_fused(
        [
            ["a red bicycle", red.as_uri()],
            [
                {"type": "text", "text": "a blue sky"},
                {
                    "type": "image",
                    "base64": base64.b64encode(blue).decode(),
                    "mime_type": "image/png",
                },
            ],
            ["the keynote", Video(VIDEO_URL)],
        ]
    )

    red_content = {"text": "a red bicycle", "image": data_uri(red.read_bytes())}
    blue_content = {"text": "a blue sky", "image": data_uri(blue)}
    video_content = {"text": "the keynote", "video": VIDEO_URL}
    assert [b["input"]["contents"] for b in gateway.bodies] == [
        [red_content, blue_content, video_content]
    ]
    assert "parameters" not in gateway.bodies[0]
    assert vectors == [
        content_vector(red_content, DIMENSION),
        content_vector(blue_content, DIMENSION),
        content_vector(video_content, DIMENSION),
    ]


async def test_aembed_fused_takes_core_parts_and_fused_groups(
    make_embeddings: Make, gateway: NativeFake
) -> None:
    picture = png_bytes((10, 200, 10))
    embeddings = make_embeddings(**snapshot(res_level=0))

    vectors = await embeddings.aembed_fused(
        [Fused(["a green field", Image(picture)]), ["two pictures", Image(picture), picture]]
    )

    assert gateway.bodies == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {
                "contents": [
                    {"text": "a green field", "image": data_uri(picture)},
                    {"text": "two pictures", "multi_images": [data_uri(picture)] * 2},
                ]
            },
            "parameters": {"res_level": 0},
        }
    ]
    assert len(vectors) == 2 and vectors[0] != vectors[1]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model": FLASH, "dialect": "dashscope"}, "does not fuse"),
        ({"model": FLASH_SNAPSHOT, "dialect": "openai"}, "dialect='dashscope'"),
    ],
)
def test_embed_fused_is_refused_before_sending_where_nothing_fuses(
    make_embeddings: Make, gateway: NativeFake, fields: dict[str, Any], words: str
) -> None:
    embeddings = make_embeddings(**fields)

    with pytest.raises(InputError, match=words) as caught:
        embeddings.embed_fused([["a red bicycle", data_uri(png_bytes((200, 0, 0)))]])

    assert caught.value.part_index == 0
    assert gateway.bodies == []


def test_a_bad_group_is_named_by_its_position(make_embeddings: Make, gateway: NativeFake) -> None:
    embeddings = make_embeddings(**snapshot())
    picture = data_uri(png_bytes((1, 2, 3)))

    with pytest.raises(InputError, match=r"part 1.*2 texts") as two_texts:
        embeddings.embed_fused([["fine", picture], ["one text", "and another"]])
    with pytest.raises(InputError, match="list of groups"):
        embeddings.embed_fused("a lone string")
    with pytest.raises(InputError, match="part 0: a fused group is a list of parts, not str"):
        embeddings.embed_fused(["a lone string"])
    with pytest.raises(InputError, match=r"part 0.*list of parts"):
        block: Any = {"type": "text", "text": "a block, not a group"}
        embeddings.embed_fused([block])

    assert two_texts.value.part_index == 1
    assert gateway.bodies == []


# --- captioned image documents -----------------------------------------------------------


def test_the_loader_makes_captioned_documents_that_embed_as_one_fused_vector(
    make_embeddings: Make, gateway: NativeFake, tmp_path: Path
) -> None:
    red = write_image(tmp_path / "photos" / "red.png", (200, 0, 0))
    blue = write_image(tmp_path / "photos" / "blue.png", (0, 0, 200))
    captions = {"red.png": "a red bicycle, 100% steel"}

    documents = TongyiImageLoader(
        tmp_path / "photos", caption=lambda path: captions.get(path.name)
    ).load()

    by_name = {Path(d.metadata["source"]).name: d for d in documents}
    assert by_name["red.png"].page_content == (
        red.as_uri() + "#caption=a%20red%20bicycle%2C%20100%25%20steel"
    )
    assert by_name["red.png"].metadata["caption"] == "a red bicycle, 100% steel"
    assert by_name["blue.png"].page_content == blue.as_uri()
    assert "caption" not in by_name["blue.png"].metadata

    store = InMemoryVectorStore(make_embeddings(**snapshot(instruct=TASK)))
    store.add_documents(documents)

    fused = {"text": "a red bicycle, 100% steel", "image": data_uri(red.read_bytes())}
    (body,) = gateway.bodies
    assert sorted(body["input"]["contents"], key=len) == [
        {"image": data_uri(blue.read_bytes())},
        fused,
    ]
    assert "parameters" not in body  # documents: no instruction
    (hit,) = store.similarity_search("anything", k=1, filter=lambda d: "caption" in d.metadata)
    assert hit.metadata["caption"] == "a red bicycle, 100% steel"


def test_a_captioned_in_memory_blob_is_a_fused_data_uri_document(
    make_embeddings: Make, gateway: NativeFake
) -> None:
    picture = png_bytes((0, 200, 0))
    parser = TongyiImageParser(caption=lambda path: f"the file {path.name}")
    (document,) = parser.lazy_parse(Blob.from_data(picture, path="uploads/green.png"))

    vector = make_embeddings(**snapshot()).embed_documents([document.page_content])[0]

    fused = {"text": "the file green.png", "image": data_uri(picture)}
    assert document.page_content.startswith("data:image/png;base64,")
    assert gateway.bodies[0]["input"]["contents"] == [fused]
    assert vector == content_vector(fused, DIMENSION)


def test_captioned_documents_are_refused_by_a_model_that_does_not_fuse(
    make_embeddings: Make, gateway: NativeFake, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "red.png", (200, 0, 0))
    (document,) = TongyiImageLoader(picture, caption=lambda path: "a red square").load()

    with pytest.raises(InputError, match="does not fuse"):
        make_embeddings(model=FLASH, dialect="dashscope").embed_documents([document.page_content])
    assert gateway.bodies == []


def test_a_caption_function_that_returns_no_string_is_an_error(tmp_path: Path) -> None:
    picture = write_image(tmp_path / "red.png", (200, 0, 0))

    with pytest.raises(TypeError, match="returned a int"):
        forty_two: Any = lambda path: 42  # noqa: E731
        TongyiImageLoader(picture, caption=forty_two).load()
    with pytest.raises(TypeError, match="caption must be a function"):
        TongyiImageLoader(picture, caption="a red square")  # type: ignore[arg-type]
    (blank,) = TongyiImageLoader(picture, caption=lambda path: "  ").load()
    assert blank.page_content == picture.as_uri()


def test_the_sync_and_async_fused_methods_have_the_same_signature() -> None:
    import inspect

    sync = inspect.signature(TongyiVisionEmbeddings.embed_fused)
    asynchronous = inspect.signature(TongyiVisionEmbeddings.aembed_fused)
    assert sync.parameters == asynchronous.parameters
    assert sync.return_annotation == asynchronous.return_annotation
