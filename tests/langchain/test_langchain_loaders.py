"""TongyiImageLoader and TongyiImageParser, on files made here."""

from __future__ import annotations

import base64
import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.document_loaders import BaseLoader
from langchain_core.document_loaders.blob_loaders import BlobLoader
from langchain_core.documents.base import Blob, Document

from tests.langchain._langchain_fakes import write_image
from tongyi_vision import (
    CorruptMediaError,
    EmptyInputError,
    MediaNotFoundError,
    UnsupportedMediaError,
    file_uri,
)
from tongyi_vision.langchain import (
    SkippedMediaWarning,
    TongyiImageLoader,
    TongyiImageParser,
)
from tongyi_vision.media import imaging as _imaging

# The simple one-document-per-file loader; the package may export a clip-aware one instead.

RED = (220, 30, 40)
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2mp41" + b"\x00" * 64


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Images of every format the loader takes, plus files it must not take."""
    root = tmp_path / "media"
    write_image(root / "a.png", RED, (20, 10))
    write_image(root / "b.jpg", RED, (30, 15), "JPEG")
    write_image(root / "c.webp", RED, (8, 8), "WEBP")
    write_image(root / "d.gif", RED, (9, 9), "GIF")
    write_image(root / "e.bmp", RED, (7, 5), "BMP")
    write_image(root / "f.tiff", RED, (6, 6), "TIFF")
    write_image(root / ".hidden.png", RED)
    write_image(root / "sub" / "g.png", RED, (4, 4))
    (root / "notes.txt").write_text("no image here")
    return root


def load_quietly(loader: BaseLoader) -> tuple[list[Document], list[str]]:
    """The documents, and the messages of the SkippedMediaWarnings raised meanwhile."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        documents = loader.load()
    assert all(issubclass(w.category, SkippedMediaWarning) for w in caught)
    return documents, [str(w.message) for w in caught]


def names(documents: list[Document]) -> list[str]:
    return [Path(d.metadata["source"]).name for d in documents]


def test_a_folder_gives_one_document_per_image_with_its_reference_and_metadata(
    folder: Path,
) -> None:
    documents, skipped = load_quietly(TongyiImageLoader(folder))

    assert names(documents) == ["a.png", "b.jpg", "c.webp", "d.gif", "e.bmp", "f.tiff"]
    first = documents[0]
    assert first.page_content == file_uri(str(folder / "a.png"))
    assert first.metadata == {
        "source": str(folder / "a.png"),
        "mime_type": "image/png",
        "bytes": (folder / "a.png").stat().st_size,
        "width": 20,
        "height": 10,
        "sha256": hashlib.sha256((folder / "a.png").read_bytes()).hexdigest(),
    }
    assert [d.metadata["mime_type"] for d in documents] == [
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "image/bmp",
        "image/tiff",
    ]
    assert [(d.metadata["width"], d.metadata["height"]) for d in documents[1:]] == [
        (30, 15),
        (8, 8),
        (9, 9),
        (7, 5),
        (6, 6),
    ]
    # The text file is skipped out loud; the hidden file and the sub-folder are not looked at.
    assert len(skipped) == 1 and "notes.txt" in skipped[0] and "not an image" in skipped[0]


def test_recursive_descends_into_sub_folders(folder: Path) -> None:
    documents, _ = load_quietly(TongyiImageLoader(folder, recursive=True))

    assert names(documents) == ["a.png", "b.jpg", "c.webp", "d.gif", "e.bmp", "f.tiff", "g.png"]


def test_the_glob_argument_filters_a_folder(folder: Path) -> None:
    documents, skipped = load_quietly(TongyiImageLoader(folder, glob="*.png", recursive=True))

    assert names(documents) == ["a.png", "g.png"]
    assert skipped == []


def test_a_glob_pattern_as_the_path(folder: Path) -> None:
    flat, _ = load_quietly(TongyiImageLoader(str(folder / "*.png")))
    deep, _ = load_quietly(TongyiImageLoader(str(folder / "**" / "*.png"), recursive=True))

    assert names(flat) == ["a.png"]
    assert names(deep) == ["a.png", "g.png"]


def test_a_single_file_and_a_list_of_paths(folder: Path) -> None:
    single = TongyiImageLoader(folder / "b.jpg").load()
    several = TongyiImageLoader([folder / "e.bmp", str(folder / "sub")]).load()

    assert names(single) == ["b.jpg"]
    assert names(several) == ["e.bmp", "g.png"]


def test_broken_files_are_skipped_with_a_warning_naming_them(tmp_path: Path) -> None:
    write_image(tmp_path / "good.png", RED)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)

    documents, skipped = load_quietly(TongyiImageLoader(tmp_path))

    assert names(documents) == ["good.png"]
    # one warning for the whole load, naming each file and why
    assert len(skipped) == 1
    assert "skipped 2 files" in skipped[0]
    assert "corrupt.png" in skipped[0]
    assert "empty.png: file is empty" in skipped[0]


def test_on_error_raise_raises_the_typed_error(tmp_path: Path) -> None:
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("words")

    with pytest.raises(CorruptMediaError, match=r"corrupt\.png"):
        TongyiImageLoader(tmp_path / "corrupt.png", on_error="raise").load()
    with pytest.raises(EmptyInputError):
        TongyiImageLoader(tmp_path / "empty.png", on_error="raise").load()
    with pytest.raises(UnsupportedMediaError, match=r"notes\.txt"):
        TongyiImageLoader(tmp_path / "notes.txt", on_error="raise").load()
    with pytest.raises(MediaNotFoundError, match=r"missing\.png"):
        TongyiImageLoader(tmp_path / "missing.png", on_error="raise").load()


def test_on_error_ignore_skips_without_a_warning(folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        documents = TongyiImageLoader([folder, folder / "missing.png"], on_error="ignore").load()

    assert len(documents) == 6


def test_a_missing_path_is_reported_not_dropped(tmp_path: Path) -> None:
    with pytest.warns(SkippedMediaWarning, match=r"missing\.png"):
        documents = TongyiImageLoader(tmp_path / "missing.png").load()

    assert documents == []


def test_on_error_must_be_one_of_three() -> None:
    with pytest.raises(ValueError, match="on_error"):
        TongyiImageLoader(".", on_error="skip")  # type: ignore[arg-type]


def test_loading_is_lazy(tmp_path: Path) -> None:
    write_image(tmp_path / "1.png", RED)
    write_image(tmp_path / "2.png", RED)
    documents = TongyiImageLoader(tmp_path).lazy_load()

    assert isinstance(documents, Iterator)
    first = next(documents)
    # A file removed after the first document was made is found missing only when reached.
    (tmp_path / "2.png").unlink()
    with pytest.warns(SkippedMediaWarning, match=r"2\.png"):
        rest = list(documents)

    assert names([first]) == ["1.png"]
    assert rest == []


async def test_alazy_load_yields_the_same_documents(folder: Path) -> None:
    loader = TongyiImageLoader(folder, glob="*.png", recursive=True)

    documents = [d async for d in loader.alazy_load()]

    assert documents == loader.load()


def test_as_data_uri_puts_the_file_itself_in_the_text(folder: Path) -> None:
    (document,) = TongyiImageLoader(folder / "a.png", as_data_uri=True).load()

    header, _, payload = document.page_content.partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == (folder / "a.png").read_bytes()
    assert document.metadata["source"] == str(folder / "a.png")


def test_without_pillow_width_and_height_are_none(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_imaging, "pillow_available", lambda: False)

    (document,) = TongyiImageLoader(folder / "a.png").load()

    assert (document.metadata["width"], document.metadata["height"]) == (None, None)
    assert document.metadata["bytes"] == (folder / "a.png").stat().st_size


class ListBlobLoader(BlobLoader):
    """The smallest blob loader: the blobs it was given."""

    def __init__(self, blobs: list[Blob]) -> None:
        self.blobs = blobs

    def yield_blobs(self) -> Iterator[Blob]:
        yield from self.blobs


def test_the_parser_reads_blobs_from_any_blob_loader(folder: Path) -> None:
    parser = TongyiImageParser()
    data = (folder / "a.png").read_bytes()
    blobs = [
        Blob.from_path(folder / "b.jpg", metadata={"album": "red things"}),
        Blob.from_data(data, metadata={"source": "upload-7"}),
        Blob.from_path(folder / "notes.txt"),
    ]

    with pytest.warns(SkippedMediaWarning, match=r"notes\.txt"):
        documents = [d for b in ListBlobLoader(blobs).yield_blobs() for d in parser.lazy_parse(b)]

    on_disk, in_memory = documents
    assert on_disk.page_content == file_uri(str(folder / "b.jpg"))
    assert on_disk.metadata["album"] == "red things"
    assert on_disk.metadata["width"] == 30
    # An in-memory blob has no file to point at, so its text is a data URI.
    assert in_memory.page_content == "data:image/png;base64," + base64.b64encode(data).decode()
    assert in_memory.metadata["source"] == "upload-7"
    assert (in_memory.metadata["width"], in_memory.metadata["height"]) == (20, 10)


def test_a_broken_link_is_reported_and_a_linked_folder_is_not_followed(tmp_path: Path) -> None:
    write_image(tmp_path / "real.png", RED)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop").symlink_to(tmp_path)

    with pytest.warns(SkippedMediaWarning, match=r"dangling\.png"):
        documents = TongyiImageLoader(tmp_path, recursive=True).load()

    assert names(documents) == ["real.png"]


@pytest.mark.parametrize("given", [None, 42, b"photos/"])
def test_a_loader_of_no_path_is_a_typed_error(given: Any) -> None:
    from tongyi_vision import InputError
    from tongyi_vision.langchain import TongyiVideoLoader

    with pytest.raises(InputError, match="takes a file, a folder"):
        TongyiImageLoader(given)
    with pytest.raises(InputError, match="takes a file, a folder"):
        TongyiVideoLoader(given)
