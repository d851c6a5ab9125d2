"""The clip-aware LangChain loader and LlamaIndex reader, with the service faked by
``httpx.MockTransport`` (no sockets).

The fake answers a ``multi_images`` group with a vector made of the mean colour
of its frames' corners, so a clip's vector says which segment it was sampled
from: red, checkerboard or blue.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._video_media import BLUE, RED, garbage_after_header, near, pixel, sample, truncated
from tongyi_vision import Client, CorruptMediaError, UnsupportedMediaError, Video

KEY = "sk-test-video"
DIMENSION = 768


def colour_vector(content: dict[str, Any]) -> list[float]:
    """Mean corner colour of a group's frames (normalised), or a fixed vector for other parts."""
    if "multi_images" not in content:
        return [0.0, 0.0, 0.0, 1.0] + [0.0] * (DIMENSION - 4)
    colours = [pixel(base64.b64decode(uri.split(",", 1)[1])) for uri in content["multi_images"]]
    mean = [sum(c[i] for c in colours) / len(colours) for i in range(3)]
    norm = math.sqrt(sum(v * v for v in mean)) or 1.0
    return [v / norm for v in mean] + [0.0] * (DIMENSION - 3)


def unit(colour: tuple[int, int, int]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in colour))
    return [v / norm for v in colour]


class FakeService:
    """Answers the openai dialect and records every content it was sent."""

    def __init__(self) -> None:
        self.contents: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        given = body["input"]
        contents = [{"text": t} for t in given] if isinstance(given, list) else given["contents"]
        self.contents.extend(contents)
        data = [
            {"object": "embedding", "index": i, "embedding": colour_vector(c)}
            for i, c in enumerate(contents)
        ]
        usage = {"prompt_tokens": len(contents), "total_tokens": len(contents)}
        return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})

    def frames_sent(self) -> list[list[bytes]]:
        return [
            [base64.b64decode(u.split(",", 1)[1]) for u in c["multi_images"]]
            for c in self.contents
            if "multi_images" in c
        ]


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def http(service: FakeService) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(service)) as client:
        yield client


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample.mp4 (25 s: red, checkerboard, blue), short.mkv (4 s), notes.txt, sub/deep.webm."""
    folder = tmp_path_factory.mktemp("library")
    sample(folder, "sample.mp4")
    sample(folder, "short.mkv", seconds=4.0)
    (folder / "notes.txt").write_text("not a video")
    (folder / "sub").mkdir()
    sample(folder / "sub", "deep.webm", seconds=3.0, codec="libvpx")
    return folder


# --- LangChain ---


def test_loader_yields_one_document_per_clip(library: Path) -> None:
    from tongyi_vision.langchain import SkippedVideoWarning, TongyiVideoLoader

    with pytest.warns(SkippedVideoWarning, match=r"notes\.txt.*not a video container"):
        documents = TongyiVideoLoader(library, clip_seconds=10.0).load()

    video = library / "sample.mp4"
    assert [d.page_content for d in documents] == [
        video.resolve().as_uri() + "#t=0,10",
        video.resolve().as_uri() + "#t=10,20",
        video.resolve().as_uri() + "#t=20,25",
        (library / "short.mkv").resolve().as_uri() + "#t=0,4",
    ]
    assert documents[2].metadata == {
        "source": str(video),
        "clip_index": 2,
        "start_seconds": 20.0,
        "end_seconds": 25.0,
        "duration": 25.0,
        "mime_type": "video/mp4",
        "width": 320,
        "height": 240,
        "sha256": hashlib.sha256(video.read_bytes()).hexdigest(),
    }
    assert documents[3].metadata["mime_type"] == "video/x-matroska"


def test_loader_takes_globs_lists_and_sub_folders(library: Path) -> None:
    from tongyi_vision.langchain import TongyiVideoLoader

    pattern = str(library / "**" / "*.webm")
    documents = TongyiVideoLoader(pattern, recursive=True, clip_seconds=2.0).load()
    assert [(d.metadata["start_seconds"], d.metadata["end_seconds"]) for d in documents] == [
        (0.0, 2.0),
        (2.0, 3.0),
    ]
    everything = TongyiVideoLoader(library, recursive=True, glob="*.m*", on_error="ignore").load()
    assert {Path(d.metadata["source"]).name for d in everything} == {"sample.mp4", "short.mkv"}
    both = TongyiVideoLoader([library / "short.mkv", library / "sub"]).load()
    assert [Path(d.metadata["source"]).name for d in both] == ["short.mkv", "deep.webm"]


def test_loader_writes_a_thumbnail_per_clip(library: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    from tongyi_vision.langchain import TongyiVideoLoader

    documents = TongyiVideoLoader(
        library / "sample.mp4", thumbnails_dir=tmp_path / "thumbs", thumbnail_size=160
    ).load()
    paths = [Path(d.metadata["thumbnail_path"]) for d in documents]
    assert [p.name.split(".", 2)[::2] for p in paths] == [
        ["sample", "0-10.jpg"],
        ["sample", "10-20.jpg"],
        ["sample", "20-25.jpg"],
    ]
    # Another video of the same name, elsewhere, keeps its own thumbnails.
    (tmp_path / "other").mkdir()
    other = sample(tmp_path / "other", "sample.mp4", seconds=4.0)
    (clip,) = TongyiVideoLoader(other, thumbnails_dir=tmp_path / "thumbs").load()
    assert clip.metadata["thumbnail_path"] not in {str(p) for p in paths}
    assert all(p.exists() for p in paths)
    assert near(pixel(paths[0].read_bytes()), RED)
    assert near(pixel(paths[2].read_bytes()), BLUE)
    with PILImage.open(paths[1]) as image:
        assert (image.format, image.size) == ("JPEG", (160, 120))


def test_loader_reports_bad_files_as_asked(library: Path, tmp_path: Path) -> None:
    from tongyi_vision.langchain import SkippedVideoWarning, TongyiVideoLoader

    broken = garbage_after_header(library / "sample.mp4", tmp_path / "broken.mp4")
    with pytest.raises(CorruptMediaError, match=r"broken\.mp4': cannot be opened as a video"):
        TongyiVideoLoader(broken, on_error="raise").load()
    with pytest.warns(SkippedVideoWarning, match="broken.mp4"):
        assert TongyiVideoLoader(broken).load() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TongyiVideoLoader(broken, on_error="ignore").load() == []
    with pytest.warns(SkippedVideoWarning, match="file not found"):
        assert TongyiVideoLoader(tmp_path / "missing.mp4").load() == []


def test_loader_skips_undecodable_clips_when_it_writes_thumbnails(
    library: Path, tmp_path: Path
) -> None:
    from tongyi_vision.langchain import SkippedVideoWarning, TongyiVideoLoader

    whole = sample(tmp_path, "whole.mkv")
    cut = truncated(whole, tmp_path / "cut.mkv", fraction=0.3)
    with pytest.warns(SkippedVideoWarning, match="no frame between"):
        documents = TongyiVideoLoader(cut, thumbnails_dir=tmp_path / "t").load()
    assert documents and documents[0].metadata["start_seconds"] == 0.0
    assert all(d.metadata["end_seconds"] <= 20.0 for d in documents)


def test_blob_parser_reads_file_blobs_and_refuses_memory(library: Path) -> None:
    from langchain_core.document_loaders.blob_loaders import Blob

    from tongyi_vision.langchain import SkippedVideoWarning, TongyiVideoParser

    parser = TongyiVideoParser(clip_seconds=10.0)
    blob = Blob.from_path(library / "sample.mp4", metadata={"album": "tests"})
    documents = list(parser.lazy_parse(blob))
    assert [d.metadata["clip_index"] for d in documents] == [0, 1, 2]
    assert all(d.metadata["album"] == "tests" for d in documents)
    with pytest.warns(SkippedVideoWarning, match="in memory"):
        assert list(parser.lazy_parse(Blob.from_data(b"\x00\x00\x00\x18ftypmp42"))) == []


def test_clip_documents_embed_as_their_own_frames(library: Path, http: httpx.Client) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from tongyi_vision.langchain import TongyiVideoLoader, TongyiVisionEmbeddings

    service: FakeService = http._transport.handler  # type: ignore[attr-defined]
    embeddings = TongyiVisionEmbeddings(api_key=KEY, http_client=http)
    store = InMemoryVectorStore(embeddings)
    documents = TongyiVideoLoader(library / "sample.mp4").load()
    store.add_documents(documents)

    sent = service.frames_sent()
    assert [len(frames) for frames in sent] == [8, 8, 8]
    # Requests run concurrently, so they arrive in any order.
    assert sum(all(near(pixel(f), RED) for f in frames) for frames in sent) == 1
    assert sum(all(near(pixel(f), BLUE) for f in frames) for frames in sent) == 1
    # The blue clip's vector is the nearest to a blue vector.
    (found,) = store.similarity_search_by_vector(unit(BLUE) + [0.0] * (DIMENSION - 3), k=1)
    assert (found.metadata["start_seconds"], found.metadata["end_seconds"]) == (20.0, 25.0)
    assert found.id == found.page_content
    # Loading the video again updates its clips instead of adding copies.
    store.add_documents(TongyiVideoLoader(library / "sample.mp4").load())
    assert len(store.store) == 3


def test_embed_video_takes_clip_uris(library: Path, http: httpx.Client) -> None:
    from tongyi_vision.langchain import TongyiVisionEmbeddings

    service: FakeService = http._transport.handler  # type: ignore[attr-defined]
    embeddings = TongyiVisionEmbeddings(api_key=KEY, http_client=http)
    uri = (library / "sample.mp4").resolve().as_uri() + "#t=20,25"
    (vector,) = embeddings.embed_video([uri])
    assert vector[:3] == pytest.approx(colour_vector(service.contents[0])[:3])
    assert all(near(pixel(f), BLUE) for f in service.frames_sent()[0])


# --- LlamaIndex ---


class RecordingEmbedder:
    """Stands for TongyiVisionEmbedding: records the video parts it is asked to embed."""

    def __init__(self) -> None:
        self.batches: list[list[Video]] = []

    def get_video_embedding_batch(
        self, videos: Sequence[Any], show_progress: bool = False
    ) -> list[list[float]]:
        parts = list(videos)
        self.batches.append(parts)
        for part in parts:
            if isinstance(part, Video):
                part.prepare().load()  # decode, as the real model would
        return [[float(p.start or 0.0), 1.0] for p in parts]


def test_reader_yields_clip_documents_carrying_their_vectors(library: Path) -> None:
    from llama_index.core.schema import ImageDocument

    from tongyi_vision.llama_index import TongyiVideoReader

    embedder = RecordingEmbedder()
    reader = TongyiVideoReader(embedder, clip_seconds=10.0, on_error="ignore")
    documents = reader.load_data(library, extra_info={"album": "tests"})

    assert [len(batch) for batch in embedder.batches] == [3, 1]  # one call per video
    assert all(isinstance(d, ImageDocument) for d in documents)
    assert [d.embedding for d in documents] == [[0.0, 1.0], [10.0, 1.0], [20.0, 1.0], [0.0, 1.0]]
    clip = documents[1]
    uri = (library / "sample.mp4").resolve().as_uri() + "#t=10,20"
    assert clip.id_ == uri
    assert clip.text == ""
    assert clip.metadata["clip_uri"] == uri
    assert clip.metadata["album"] == "tests"
    assert (clip.metadata["start_seconds"], clip.metadata["end_seconds"]) == (10.0, 20.0)
    assert clip.metadata["duration"] == 25.0
    assert clip.metadata["source"] == str((library / "sample.mp4").resolve())
    part = embedder.batches[0][1]
    assert (part.start, part.end, part.frames) == (10.0, 20.0, 8)
    assert [e.path for e in reader.errors] == [str(library / "notes.txt")]


def test_reader_sets_thumbnails_as_image_paths(library: Path, tmp_path: Path) -> None:
    from llama_index.core.schema import ImageDocument

    from tongyi_vision.llama_index import TongyiVideoReader

    reader = TongyiVideoReader(RecordingEmbedder(), thumbnails_dir=tmp_path)
    documents = reader.load_data(library / "sample.mp4")
    assert all(isinstance(d, ImageDocument) for d in documents)
    thumbs = [d.image_path for d in documents if isinstance(d, ImageDocument)]
    assert thumbs == [d.metadata["thumbnail_path"] for d in documents]
    assert thumbs[2] is not None and near(pixel(Path(thumbs[2]).read_bytes()), BLUE)


def test_reader_with_a_core_client_sends_each_clip_as_frames(
    library: Path, http: httpx.Client, service: FakeService
) -> None:
    from tongyi_vision.llama_index import TongyiVideoReader

    with Client(api_key=KEY, http_client=http) as client:
        documents = TongyiVideoReader(client).load_data(library / "sample.mp4")
    assert [len(frames) for frames in service.frames_sent()] == [8, 8, 8]
    assert documents[0].embedding is not None and documents[2].embedding is not None
    assert documents[0].embedding[:3] == pytest.approx(unit(RED), abs=0.05)
    assert documents[2].embedding[:3] == pytest.approx(unit(BLUE), abs=0.05)


def test_index_stores_the_clip_vectors_without_embedding_again(library: Path) -> None:
    from llama_index.core.embeddings import MultiModalEmbedding
    from llama_index.core.indices import MultiModalVectorStoreIndex

    from tongyi_vision.llama_index import TongyiVideoReader

    class QueryOnly(MultiModalEmbedding):
        """Embeds queries as 'near 20 s'; fails if asked to embed a document or an image."""

        def _get_query_embedding(self, query: str) -> list[float]:
            return [20.0, 1.0]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return [20.0, 1.0]

        def _get_text_embedding(self, text: str) -> list[float]:
            raise AssertionError("clip documents must not be embedded as text")

        def _get_image_embedding(self, img_file_path: Any) -> list[float]:
            raise AssertionError("clip documents must not be embedded as images")

        async def _aget_image_embedding(self, img_file_path: Any) -> list[float]:
            raise AssertionError("clip documents must not be embedded as images")

    model = QueryOnly(model_name="query-only")
    documents = TongyiVideoReader(RecordingEmbedder()).load_data(library / "sample.mp4")
    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=model, image_embed_model=model
    )
    retriever = index.as_retriever(image_similarity_top_k=3)
    results = retriever.text_to_image_retrieve("the end")
    assert len(results) == 3
    top = results[0].node
    assert (top.metadata["start_seconds"], top.metadata["end_seconds"]) == (20.0, 25.0)


def test_reader_skips_only_the_clips_that_cannot_be_decoded(
    tmp_path: Path, http: httpx.Client
) -> None:
    from tongyi_vision.llama_index import (
        SkippedVideoWarning,
        TongyiVideoReader,
        TongyiVisionEmbedding,
    )

    cut = truncated(sample(tmp_path, "whole.mkv"), tmp_path / "cut.mkv", fraction=0.3)
    embedding = TongyiVisionEmbedding(api_key=KEY, http_client=http)
    reader = TongyiVideoReader(embedding)
    with pytest.warns(SkippedVideoWarning, match="no frame between"):
        documents = reader.load_data(cut)
    assert documents and documents[0].metadata["start_seconds"] == 0.0
    assert any("#t=20,25" in e.path for e in reader.errors)
    with pytest.raises(CorruptMediaError):
        TongyiVideoReader(embedding, on_error="raise").load_data(cut)


def test_a_foreign_embedder_skips_a_file_with_a_bad_clip_whole(tmp_path: Path) -> None:
    from tongyi_vision.llama_index import SkippedVideoWarning, TongyiVideoReader

    cut = truncated(sample(tmp_path, "whole.mkv"), tmp_path / "cut.mkv", fraction=0.3)
    reader = TongyiVideoReader(RecordingEmbedder())
    with pytest.warns(SkippedVideoWarning, match="no frame between"):
        assert reader.load_data(cut) == []
    assert [e.path for e in reader.errors] == [str(cut)]


def test_reader_refuses_what_cannot_embed_video() -> None:
    from tongyi_vision.llama_index import TongyiVideoReader

    with pytest.raises(TypeError, match="get_video_embedding_batch"):
        TongyiVideoReader(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frames"):
        TongyiVideoReader(RecordingEmbedder(), frames=9)


def test_reader_with_the_llama_index_embedding(
    library: Path, http: httpx.Client, service: FakeService
) -> None:
    from tongyi_vision.llama_index import TongyiVideoReader, TongyiVisionEmbedding

    embedding = TongyiVisionEmbedding(api_key=KEY, http_client=http)
    documents = TongyiVideoReader(embedding).load_data(library / "short.mkv")
    assert len(documents) == 1
    assert len(service.frames_sent()) == 1
    assert documents[0].embedding == pytest.approx(colour_vector(service.contents[0]))


def test_unsupported_file_named_explicitly_is_reported(tmp_path: Path) -> None:
    from tongyi_vision.llama_index import TongyiVideoReader

    notes = tmp_path / "notes.mp4"
    notes.write_text("hello")
    with pytest.raises(UnsupportedMediaError):
        TongyiVideoReader(RecordingEmbedder(), on_error="raise").load_data(notes)


def test_reader_does_not_pay_twice_for_clips_finished_before_a_bad_one(
    tmp_path: Path, http: httpx.Client, service: FakeService
) -> None:
    from tongyi_vision.llama_index import SkippedVideoWarning, TongyiVideoReader

    cut = truncated(sample(tmp_path, "whole.mkv"), tmp_path / "cut.mkv", fraction=0.3)
    with Client(api_key=KEY, http_client=http, max_concurrency=1) as client:
        reader = TongyiVideoReader(client)
        with pytest.warns(SkippedVideoWarning):
            documents = reader.load_data(cut)
    assert [d.metadata["start_seconds"] for d in documents] == [0.0]
    red_groups = [f for f in service.frames_sent() if all(near(pixel(j), RED) for j in f)]
    assert len(red_groups) == 1
