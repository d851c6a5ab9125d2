"""The whole API end to end against emulator processes on 127.0.0.1, through the core client
and both adapters: the dated snapshots' sizes, ``res_level`` tiers on the bill, ``fps`` and
``max_video_frames``, fused vectors, instructions on queries only, the 401 of a key of another
region, usage per modality, and each of the three 429s as a ``RateLimitError``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import VectorStoreIndex

from integration_tests.conftest import RunningEmulator
from tongyi_vision import (
    FLASH,
    FLASH_SNAPSHOT,
    PLUS_SNAPSHOT,
    AuthenticationError,
    Client,
    ConfigurationError,
    Fused,
    Image,
    InputError,
    RateLimitError,
    Usage,
    Video,
)
from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings
from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding

TASK = "Find images that match the description"
VIDEO_URL = "https://videos.test/keynote.mp4"
NATIVE_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
# The price table of docs/models.md for flash and its snapshot, per token.
TEXT_PRICE, MEDIA_PRICE = 0.09 / 1e6, 0.03 / 1e6


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


class Embedder:
    """One surface (core client, LangChain, LlamaIndex) seen the same way by the tests."""

    def __init__(self, name: str, thing: Any) -> None:
        self.name, self.thing = name, thing

    def documents(self, texts: list[str]) -> list[list[float]]:
        if self.name == "core":
            return list(self.thing.embed(texts).vectors)
        if self.name == "langchain":
            return list(self.thing.embed_documents(texts))
        return list(self.thing.get_text_embedding_batch(texts))

    def query(self, text: str) -> list[float]:
        if self.name == "core":
            return list(self.thing.embed_query(text))
        if self.name == "langchain":
            return list(self.thing.embed_query(text))
        return list(self.thing.get_query_embedding(text))

    def images(self, images: list[bytes]) -> list[list[float]]:
        if self.name == "core":
            return list(self.thing.embed([Image(i) for i in images]).vectors)
        if self.name == "langchain":
            return list(self.thing.embed_image([_data_uri(i) for i in images]))
        return list(self.thing.get_image_embedding_batch([_data_uri(i) for i in images]))

    def video(self, url: str) -> list[float]:
        if self.name == "core":
            return list(self.thing.embed([Video(url)]).vectors[0])
        if self.name == "langchain":
            return list(self.thing.embed_video([url])[0])
        return list(self.thing.get_video_embedding(url))

    def fused(self, groups: list[list[Any]]) -> list[list[float]]:
        if self.name == "core":
            return list(self.thing.embed([Fused(g) for g in groups]).vectors)
        if self.name == "langchain":
            return list(self.thing.embed_fused(groups))
        return list(self.thing.get_fused_embedding_batch(groups))

    @property
    def usage(self) -> Usage:
        return self.thing.usage  # type: ignore[no-any-return]

    def close(self) -> None:
        self.thing.close()


def _data_uri(data: bytes) -> str:
    import base64

    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


SURFACES = ("core", "langchain", "llama_index")


@pytest.fixture
def make_surface(emulator: RunningEmulator) -> Iterator[Callable[..., Embedder]]:
    """``make_surface(name, server=None, **settings)``: a client of that surface on an
    emulator, in the native dialect on flash's snapshot unless told otherwise."""
    made: list[Embedder] = []

    def make(name: str, server: RunningEmulator | None = None, **settings: Any) -> Embedder:
        target = server or emulator
        settings.setdefault("api_key", target.api_key)
        settings.setdefault("dialect", "dashscope")
        model = settings.pop("model", FLASH_SNAPSHOT)
        settings["base_url"] = target.base_url
        if name == "core":
            thing: Any = Client(model=model, **settings)
        elif name == "langchain":
            thing = TongyiVisionEmbeddings(model=model, **settings)
        else:
            thing = TongyiVisionEmbedding(model, **settings)
        embedder = Embedder(name, thing)
        made.append(embedder)
        return embedder

    yield make
    for embedder in made:
        embedder.close()


# --- sizes of the dated snapshots -------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_a_snapshot_makes_vectors_of_any_size_in_its_range(
    make_surface: Callable[..., Embedder], surface: str, make_image: Callable[..., bytes]
) -> None:
    for model, size in ((FLASH_SNAPSHOT, 100), (FLASH_SNAPSHOT, 768), (PLUS_SNAPSHOT, 1000)):
        embedder = make_surface(surface, model=model, dimension=size)
        vectors = embedder.documents(["a red bicycle"]) + embedder.images([make_image(1)])
        assert [len(v) for v in vectors] == [size, size]


@pytest.mark.parametrize("surface", SURFACES)
def test_sizes_outside_a_models_range_are_refused_before_sending(
    make_surface: Callable[..., Embedder], surface: str, emulator: RunningEmulator
) -> None:
    before = emulator.stats()["requests"]
    for model, size in ((FLASH_SNAPSHOT, 63), (FLASH_SNAPSHOT, 769), (FLASH, 300)):
        with pytest.raises(ConfigurationError, match=f"not {size}"):
            make_surface(surface, model=model, dimension=size)
    assert emulator.stats()["requests"] == before


def test_the_emulator_refuses_the_same_sizes_when_sent_anyway(emulator: RunningEmulator) -> None:
    # What the client refuses, the service does too: the two tables agree.
    def post(model: str, dimension: int) -> httpx.Response:
        return httpx.post(
            emulator.base_url + NATIVE_PATH,
            headers={"Authorization": f"Bearer {emulator.api_key}"},
            json={
                "model": model,
                "input": {"contents": [{"text": "hello"}]},
                "parameters": {"dimension": dimension},
            },
            timeout=10,
        )

    assert post(FLASH_SNAPSHOT, 100).status_code == 200
    for model, size in ((FLASH_SNAPSHOT, 63), (FLASH_SNAPSHOT, 769), (FLASH, 300)):
        refused = post(model, size)
        assert (refused.status_code, refused.json()["code"]) == (400, "InvalidParameter")


# --- res_level, fps and max_video_frames on the bill -------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_res_level_sets_the_tokens_an_image_costs(
    make_surface: Callable[..., Embedder], surface: str, make_image: Callable[..., bytes]
) -> None:
    tokens = []
    for level in (0, 1, 2, 3):
        embedder = make_surface(surface, res_level=level)
        embedder.images([make_image(7)])
        tokens.append(embedder.usage.image_tokens)
    assert tokens == [127, 402, 578, 1026]  # the tiers of contract.md


@pytest.mark.parametrize("surface", SURFACES)
def test_fps_and_max_video_frames_set_the_frames_a_video_is_billed_for(
    make_surface: Callable[..., Embedder], surface: str
) -> None:
    def video_tokens(**settings: Any) -> int:
        embedder = make_surface(surface, **settings)
        embedder.video(VIDEO_URL)
        return embedder.usage.video_tokens

    per_frame = video_tokens(max_video_frames=1)
    assert per_frame > 0
    # the emulator's video is 10 s long: frames = ceil(10 * fps), at most max_video_frames
    assert video_tokens() == 8 * per_frame  # fps 1.0, at most 8 frames by default
    assert video_tokens(fps=0.5) == 5 * per_frame
    assert video_tokens(fps=0.5, max_video_frames=2) == 2 * per_frame
    assert video_tokens(max_video_frames=64) == 10 * per_frame


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"fps": 1.5}, "fps"),
        ({"fps": -0.5}, "fps"),
        ({"max_video_frames": 0}, "max_video_frames"),
        ({"max_video_frames": 65}, "max_video_frames"),
        ({"model": FLASH, "max_video_frames": 8}, "does not take max_video_frames"),
        ({"model": FLASH, "res_level": 2}, "does not take res_level"),
    ],
)
def test_video_parameters_out_of_range_are_refused_before_sending(
    make_surface: Callable[..., Embedder],
    surface: str,
    settings: dict[str, Any],
    words: str,
    emulator: RunningEmulator,
) -> None:
    before = emulator.stats()["requests"]
    with pytest.raises(ConfigurationError, match=words):
        make_surface(surface, **settings)
    assert emulator.stats()["requests"] == before


def test_a_videos_own_parameters_win_over_the_clients(
    client_factory: Callable[..., Client],
) -> None:
    client = client_factory("dashscope", model=FLASH_SNAPSHOT, max_video_frames=1)
    one = client.embed([Video(VIDEO_URL)]).usage.video_tokens
    three = client.embed([Video(VIDEO_URL, fps=0.3, max_video_frames=5)]).usage.video_tokens
    assert three == 3 * one
    with pytest.raises(InputError, match="fps"):
        Video(VIDEO_URL, fps=2.0)


# --- usage per modality -------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_usage_and_cost_per_modality(
    make_surface: Callable[..., Embedder], surface: str, make_image: Callable[..., bytes]
) -> None:
    embedder = make_surface(surface, res_level=2)
    embedder.documents(["a red bicycle leaning on a wall"])
    embedder.images([make_image(3), make_image(4)])
    embedder.video(VIDEO_URL)

    usage = embedder.usage
    assert usage.text_tokens > 0
    assert usage.image_tokens == 2 * 578
    assert usage.video_tokens > 0
    assert usage.media_tokens == usage.image_tokens + usage.video_tokens
    assert usage.text_cost_usd == pytest.approx(usage.text_tokens * TEXT_PRICE)
    assert usage.image_cost_usd == pytest.approx(usage.image_tokens * MEDIA_PRICE)
    assert usage.video_cost_usd == pytest.approx(usage.video_tokens * MEDIA_PRICE)
    assert usage.cost_usd == pytest.approx(usage.text_cost_usd + usage.media_cost_usd)
    assert usage.requests == 3


# --- fused vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_a_fused_vector_is_near_each_of_its_members_and_equals_none(
    make_surface: Callable[..., Embedder], surface: str, make_image: Callable[..., bytes]
) -> None:
    embedder = make_surface(surface)
    picture = make_image(11)
    member = _data_uri(picture) if surface != "core" else Image(picture)

    fused, with_video = embedder.fused(
        [["a red bicycle", member], ["the keynote talk", Video(VIDEO_URL)]]
    )
    text, other = embedder.documents(["a red bicycle", "quarterly tax forms"])
    (image,) = embedder.images([picture])
    video = embedder.video(VIDEO_URL)

    for near in (text, image):
        assert 0.6 < cosine(fused, near) < 0.8  # about 1/sqrt(2)
    assert abs(cosine(fused, other)) < 0.3
    assert fused not in (text, image)
    assert 0.6 < cosine(with_video, video) < 0.8


@pytest.mark.parametrize("surface", SURFACES)
def test_fused_groups_are_refused_where_the_model_does_not_fuse(
    make_surface: Callable[..., Embedder], surface: str, emulator: RunningEmulator
) -> None:
    embedder = make_surface(surface, model=FLASH)
    before = emulator.stats()["requests"]
    with pytest.raises(InputError, match="does not fuse"):
        embedder.fused([["a red bicycle", Video(VIDEO_URL)]])
    assert emulator.stats()["requests"] == before


def test_captioned_loader_documents_come_back_from_a_caption_query(
    emulator: RunningEmulator, tmp_path: Path, make_image: Callable[..., bytes]
) -> None:
    for seed, name in enumerate(("bicycle", "lighthouse", "harbour")):
        (tmp_path / f"{name}.jpg").write_bytes(make_image(20 + seed))
    captions = {"bicycle.jpg": "a red bicycle", "lighthouse.jpg": "a lighthouse at dusk"}
    embeddings = TongyiVisionEmbeddings(
        model=FLASH_SNAPSHOT,
        dialect="dashscope",
        base_url=emulator.base_url,
        api_key=emulator.api_key,
        instruct=TASK,
    )
    store = InMemoryVectorStore(embeddings)
    store.add_documents(
        TongyiImageLoader(tmp_path, caption=lambda path: captions.get(path.name)).load()
    )

    (hit,) = store.similarity_search("lighthouse at dusk", k=1)
    assert hit.metadata["caption"] == "a lighthouse at dusk"
    assert Path(hit.metadata["source"]).name == "lighthouse.jpg"
    embeddings.close()


def test_captioned_reader_documents_come_back_from_a_caption_query(
    emulator: RunningEmulator, tmp_path: Path, make_image: Callable[..., bytes]
) -> None:
    for seed, name in enumerate(("bicycle", "lighthouse", "harbour")):
        (tmp_path / f"{name}.jpg").write_bytes(make_image(30 + seed))
    captions = {"bicycle.jpg": "a red bicycle", "lighthouse.jpg": "a lighthouse at dusk"}
    embedding = TongyiVisionEmbedding(
        FLASH_SNAPSHOT,
        dialect="dashscope",
        base_url=emulator.base_url,
        api_key=emulator.api_key,
        instruct=TASK,
    )
    documents = TongyiImageReader(caption=lambda path: captions.get(path.name)).load_data(tmp_path)
    index = VectorStoreIndex.from_documents(documents, embed_model=embedding)

    (hit,) = index.as_retriever(similarity_top_k=1).retrieve("a red bicycle")
    assert hit.node.metadata["caption"] == "a red bicycle"
    embedding.close()


# --- instruct: queries only ---------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_instruct_moves_queries_and_leaves_documents_alone(
    make_surface: Callable[..., Embedder], surface: str
) -> None:
    instructed = make_surface(surface, instruct=TASK)
    plain = make_surface(surface)

    query = instructed.query("a red bicycle")
    (document,) = instructed.documents(["a red bicycle"])
    (plain_document,) = plain.documents(["a red bicycle"])
    plain_query = plain.query("a red bicycle")

    assert document == plain_document  # documents never carry the instruction
    assert plain_query == plain_document  # and without one a query is the text itself
    assert 0.9 < cosine(query, document) < 0.995  # about 0.97 in the emulator
    assert query != document


def test_async_queries_carry_the_instruction_too(emulator: RunningEmulator) -> None:
    common: dict[str, Any] = {
        "dialect": "dashscope",
        "base_url": emulator.base_url,
        "api_key": emulator.api_key,
        "instruct": TASK,
    }
    langchain = TongyiVisionEmbeddings(model=FLASH_SNAPSHOT, **common)
    llama = TongyiVisionEmbedding(FLASH_SNAPSHOT, **common)

    async def run() -> list[list[float]]:
        vectors = [
            await langchain.aembed_query("a red bicycle"),
            await llama.aget_query_embedding("a red bicycle"),
            (await langchain.aembed_documents(["a red bicycle"]))[0],
        ]
        await langchain.aclose()
        await llama.aclose()
        return vectors

    lc_query, llama_query, document = asyncio.run(run())
    assert lc_query == llama_query
    assert 0.9 < cosine(lc_query, document) < 0.995


# --- regions and keys ---------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_a_key_of_the_other_region_gets_a_401_that_says_so(
    make_surface: Callable[..., Embedder],
    surface: str,
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    beijing = start_emulator(
        "--region",
        "beijing",
        "--key-region",
        "sk-intl-test=singapore",
        "--key-region",
        "sk-cn-test=beijing",
    )
    foreign = make_surface(surface, server=beijing, api_key="sk-intl-test")
    local = make_surface(surface, server=beijing, api_key="sk-cn-test")

    with pytest.raises(AuthenticationError) as refused:
        foreign.documents(["hello"])
    assert local.documents(["hello"])[0]

    error = refused.value
    assert error.status == 401
    assert "bound to a region" in str(error)
    assert "DASHSCOPE_API_KEY" in str(error)
    assert "sk-intl-test" not in str(error) and "sk-intl-test" not in repr(error)


# --- the three 429s -----------------------------------------------------------------------


def first_refusal(embedder: Embedder, most: int = 40) -> RateLimitError:
    """Send one-image requests until one is refused; the limits here are a second wide, so a
    few quick requests always meet one."""
    for seed in range(most):
        try:
            embedder.images([_tiny_jpeg(seed)])
        except RateLimitError as exc:
            return exc
    raise AssertionError(f"{most} requests in a row, and none was refused")


def _tiny_jpeg(seed: int) -> bytes:
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (seed % 256, 40, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("flags", "code", "limit"),
    [
        (("--rpm", "60"), "Throttling.RateQuota", "requests"),
        (("--tpm", "12000"), "Throttling.AllocationQuota", "tokens"),
        (("--surge", "2"), "Throttling", "surge"),
    ],
)
def test_each_429_is_a_rate_limit_error_naming_its_limit_and_retries_get_through(
    make_surface: Callable[..., Embedder],
    start_emulator: Callable[..., RunningEmulator],
    flags: tuple[str, ...],
    code: str,
    limit: str,
) -> None:
    server = start_emulator(*flags)
    for surface in SURFACES:
        eager = make_surface(surface, server=server, max_retries=0)
        refused = first_refusal(eager)
        assert (refused.status, refused.code, refused.limit) == (429, code, limit), surface
        assert refused.retry_after is not None and refused.retry_after <= 60

        patient = make_surface(surface, server=server, max_retries=5)
        # a burst that meets the limit again, and waits it out instead of failing
        vectors: list[list[float]] = []
        while patient.usage.retries == 0 and len(vectors) < 40:
            vectors += patient.images([_tiny_jpeg(100 + len(vectors))])
        assert patient.usage.retries >= 1, f"{surface}: {len(vectors)} requests, no 429"
        assert all(len(v) == 768 for v in vectors)
    assert server.stats()["throttled"] >= 6
