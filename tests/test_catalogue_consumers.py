"""Every consumer finds its files through the catalogue: the same awkward folder (a link that
loops, a broken link, a decompression bomb, a good file) gives each of them the good file and
a report of the others, never an exception. The rules themselves are tested once, in
``test_catalogue.py``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests._core_fakes import png_bytes
from tests._video_media import sample
from tests.test_catalogue import png_header


@pytest.fixture
def awkward(tmp_path: Path) -> Path:
    folder = tmp_path / "awkward"
    folder.mkdir()
    (folder / "good.png").write_bytes(png_bytes(color=(10, 200, 30)))
    (folder / "bomb.png").write_bytes(png_header(50_000, 50_000))
    (folder / "self").symlink_to(folder / "self")
    (folder / "gone.png").symlink_to(folder / "missing.png")
    (folder / "loop").symlink_to(folder)
    return folder


def _quietly(load: Callable[[], list[str]]) -> tuple[list[str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = load()
    return found, [str(w.message) for w in caught]


def test_the_cli_collects_the_good_file_and_reports_the_rest(awkward: Path) -> None:
    from tongyi_vision.cli.items import collect_items, measure_images

    collected = collect_items([awkward])
    # Headers are read for the images to be sent only (a re-run hashes and nothing more).
    assert sorted(Path(f.id).name for f in collected.failures) == ["gone.png", "self"]
    kept, broken = measure_images(collected.items)
    assert [Path(i.source).name for i in kept] == ["good.png"]
    assert kept[0].metadata["width"] > 0
    assert [Path(f.id).name for f in broken] == ["bomb.png"]


def test_the_langchain_image_loader_uses_the_catalogue(awkward: Path) -> None:
    from tongyi_vision.langchain import TongyiImageLoader

    loader = TongyiImageLoader(awkward, recursive=True)
    found, warned = _quietly(lambda: [d.metadata["source"] for d in loader.load()])
    assert [Path(s).name for s in found] == ["good.png"]
    assert sorted(Path(f.path).name for f in loader.errors) == ["bomb.png", "gone.png", "self"]
    (summary,) = warned
    assert "skipped 3 files" in summary


def test_the_llama_index_image_reader_uses_the_catalogue(awkward: Path) -> None:
    from tongyi_vision.llama_index import TongyiImageReader

    reader = TongyiImageReader(recursive=True, on_error="ignore")
    documents = reader.load_data(awkward)
    assert [d.metadata["file_name"] for d in documents] == ["good.png"]
    assert sorted(Path(e.path).name for e in reader.errors) == ["bomb.png", "gone.png", "self"]


def test_the_video_loader_and_reader_use_the_catalogue(awkward: Path) -> None:
    from tongyi_vision.langchain import TongyiVideoLoader
    from tongyi_vision.llama_index import TongyiVideoReader

    sample(awkward, "clip.mp4", seconds=3.0)
    loader = TongyiVideoLoader(awkward, recursive=True, clip_seconds=5.0, on_error="ignore")
    assert [Path(d.metadata["source"]).name for d in loader.lazy_load()] == ["clip.mp4"]

    class Embedder:
        def get_video_embedding_batch(
            self, videos: Sequence[Any], show_progress: bool = False
        ) -> list[list[float]]:
            return [[1.0, 0.0] for _ in videos]

    reader = TongyiVideoReader(Embedder(), recursive=True, clip_seconds=5.0, on_error="ignore")
    assert [d.metadata["file_name"] for d in reader.load_data(awkward)] == ["clip.mp4"]
    # The video reader reports every other file, the images included.
    assert {"bomb.png", "gone.png", "good.png", "self"} <= {
        Path(e.path).name for e in reader.errors
    }
