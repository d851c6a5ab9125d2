"""``tongyi_vision.llama_index.open_index`` over an index the real CLI built against a real
emulator process: text-to-image, image-to-image, text-to-text and an inserted node, with
the emulator's counters showing that only the queries were sent (nothing re-embedded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from llama_index.core import Settings
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageNode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from tongyi_vision.index import IndexTable
from tongyi_vision.llama_index import TongyiVisionEmbedding, open_index

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

NOTES = (
    "Lighthouse keepers logged the fog horn schedule every evening. "
    "The ferry timetable changed when winter storms closed the northern harbour."
)


def cli(*args: str | Path, server: RunningEmulator) -> subprocess.CompletedProcess[str]:
    """``tongyi-vision ARGS`` as a user runs it, against ``server``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGYI_VISION_")}
    env.update(EMPIRIOLABS_API_KEY=server.api_key, TONGYI_VISION_BASE_URL=server.base_url)
    return subprocess.run(
        [sys.executable, "-m", "tongyi_vision", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def ids(found: list[NodeWithScore]) -> list[str]:
    return [hit.node.node_id for hit in found]


def test_open_index_retrieves_from_what_the_cli_built(
    start_emulator: Callable[..., RunningEmulator],
    make_image: Callable[..., bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_emulator()
    folder = tmp_path / "library"
    (folder / "photos").mkdir(parents=True)
    for seed, name, fmt in [(21, "harbour.jpg", "JPEG"), (22, "dunes.png", "PNG")]:
        (folder / "photos" / name).write_bytes(make_image(seed, fmt=fmt))
    (folder / "photos" / "forest.jpg").write_bytes(make_image(23))
    (folder / "notes.txt").write_text(NOTES)
    twin = tmp_path / "query" / "dunes-again.png"
    twin.parent.mkdir()
    shutil.copyfile(folder / "photos" / "dunes.png", twin)
    index_path = tmp_path / "library.index"

    built = cli("embed", folder, "--out", index_path, server=server)
    assert built.returncode == 0, built.stderr
    assert server.stats()["billed_parts"] == 4

    monkeypatch.setenv("EMPIRIOLABS_API_KEY", server.api_key)
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", server.base_url)
    monkeypatch.setattr(Settings, "_embed_model", None)
    monkeypatch.setattr(Settings, "_llm", None)
    index = open_index(index_path)  # the index's model, size and dialect; key from the env
    embedding = index.image_embed_model
    assert isinstance(embedding, TongyiVisionEmbedding) and index._embed_model is embedding
    with embedding:
        _retrieve_and_insert(index, server, folder, twin, index_path)
    assert Settings._embed_model is None and Settings._llm is None


def _retrieve_and_insert(
    index: MultiModalVectorStoreIndex,
    server: RunningEmulator,
    folder: Path,
    twin: Path,
    index_path: Path,
) -> None:
    embedded = server.stats()
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=3)

    # image to image: the copy of a picture finds the picture, exactly
    by_image = retriever.image_to_image_retrieve(str(twin))
    dunes = str((folder / "photos" / "dunes.png").resolve())
    assert ids(by_image)[0] == dunes and by_image[0].score == pytest.approx(1.0, abs=1e-5)
    assert isinstance(by_image[0].node, ImageNode) and by_image[0].node.image_path == dunes

    # text to image: the images (never the text), ranked as `tongyi-vision search` ranks them
    query = "sand dunes at noon"
    by_text = retriever.text_to_image_retrieve(query)
    assert len(by_text) == 3 and all(isinstance(hit.node, ImageNode) for hit in by_text)
    searched = cli(
        "search", index_path, query, "--where", "kind = 'image'", "-k", "3", "--json", server=server
    )
    assert searched.returncode == 0, searched.stderr
    expected = json.loads(searched.stdout)
    assert ids(by_text) == [hit["id"] for hit in expected]
    assert [hit.score for hit in by_text] == pytest.approx(
        [hit["score"] for hit in expected], abs=1e-5
    )

    # text to text: the words of the notes find the notes
    by_words = retriever.text_retrieve("ferry timetable winter storms harbour")
    notes = str((folder / "notes.txt").resolve())
    assert ids(by_words) == [notes]
    assert by_words[0].node.get_content() == NOTES and by_words[0].node.ref_doc_id == notes

    # an inserted node is a row of the same table, found by the next query
    index.insert_nodes([TextNode(id_="kite-note", text="kite festival on the windy beach")])
    assert IndexTable.open(index_path).count() == 5
    found = retriever.text_retrieve("kite festival windy beach")
    assert ids(found)[0] == "kite-note"

    # sent: the four queries, the CLI search and the inserted node; nothing re-embedded
    after = server.stats()
    assert after["requests"] - embedded["requests"] == 6
    assert after["billed_parts"] - embedded["billed_parts"] == 6


def test_clips_of_a_video_come_back_with_the_images(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video, write_sample_images

    server = start_emulator()
    folder = tmp_path / "media"
    red = next(p for p in write_sample_images(folder / "images") if p.name == "red-circle.png")
    video = folder / "video" / "colours.mp4"
    colours = ((200, 40, 40), (40, 60, 200), (40, 170, 70))
    generate_sample_video(
        video, seconds=12, colours=colours, segment_seconds=4, size=(160, 120), fps=4
    )
    index_path = tmp_path / "media.index"
    built = cli("embed", folder, "--out", index_path, "--clip-seconds", "4", server=server)
    assert built.returncode == 0, built.stderr

    monkeypatch.setenv("EMPIRIOLABS_API_KEY", server.api_key)
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", server.base_url)
    index = open_index(index_path)
    clips_only = MetadataFilters(filters=[MetadataFilter(key="kind", value="video")])
    embedding = index.image_embed_model
    assert isinstance(embedding, TongyiVisionEmbedding)
    with embedding:
        # the red picture finds the red third of the video
        found = index.as_retriever(
            image_similarity_top_k=3, filters=clips_only
        ).image_to_image_retrieve(str(red))
        anything = index.as_retriever(image_similarity_top_k=20).text_to_image_retrieve("red")

    source = str(video.resolve())
    clip = found[0].node
    assert clip.node_id == f"{source}#t=0,4" and clip.ref_doc_id == source
    assert clip.get_content() == video.resolve().as_uri() + "#t=0,4"
    assert (clip.metadata["kind"], clip.metadata["end_seconds"]) == ("video", 4.0)
    assert sorted(hit.node.metadata["start_seconds"] for hit in found) == [0.0, 4.0, 8.0]
    # without a filter the image store returns the clips among the images
    kinds = {hit.node.metadata["kind"] for hit in anything}
    assert kinds == {"image", "video"}
