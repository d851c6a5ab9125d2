"""TongyiImageReader over real files: what they yield, what they pass
over, what they report, and that MultiModalVectorStoreIndex indexes their documents."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core import SimpleDirectoryReader, StorageContext
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import Document, ImageDocument, ImageNode, MetadataMode

from tests.llama_index._llama_index_fakes import png_bytes, write_image
from tongyi_vision import CorruptMediaError, MediaNotFoundError, UnsupportedMediaError
from tongyi_vision.llama_index import (
    SkippedFileWarning,
    TongyiImageReader,
    TongyiVisionEmbedding,
)
from tongyi_vision.media.sources import file_uri

MakeEmbedding = Callable[..., TongyiVisionEmbedding]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """red.png, blue.jpg, green.bmp, notes.txt, a hidden image, and sub/deep.png."""
    folder = tmp_path / "photos"
    write_image(folder / "red.png", (220, 20, 20), (40, 30))
    write_image(folder / "blue.jpg", (20, 20, 220), (16, 16))
    write_image(folder / "green.bmp", (20, 200, 20), (8, 12))
    (folder / "notes.txt").write_text("not an image")
    write_image(folder / ".hidden.png", (1, 1, 1))
    write_image(folder / "sub" / "deep.png", (100, 100, 100))
    return folder


def names(documents: list[Document]) -> list[str]:
    return [d.metadata["file_name"] for d in documents]


def test_a_folder_gives_one_image_document_per_image(photos: Path) -> None:
    reader = TongyiImageReader()
    with pytest.warns(SkippedFileWarning, match=r"skipped 1 file: .*notes\.txt: is not an image"):
        documents = reader.load_data(photos)

    assert names(documents) == ["blue.jpg", "green.bmp", "red.png"]  # sorted; no text, no hidden
    red = documents[2]
    assert isinstance(red, ImageDocument)
    assert red.image_path == str((photos / "red.png").resolve())
    assert red.image is None  # a path, not a base64 copy held in memory
    assert red.text == ""
    assert red.metadata == {
        "file_name": "red.png",
        "file_path": str((photos / "red.png").resolve()),
        "mime_type": "image/png",
        "bytes": (photos / "red.png").stat().st_size,
        "width": 40,
        "height": 30,
        "sha256": hashlib.sha256((photos / "red.png").read_bytes()).hexdigest(),
        "image_uri": file_uri((photos / "red.png").resolve()),
    }
    assert [Path(e.path).name for e in reader.errors] == ["notes.txt"]
    assert red.image_mimetype == "image/png"
    assert [d.metadata["mime_type"] for d in documents[:2]] == ["image/jpeg", "image/bmp"]


def test_file_details_stay_out_of_embedded_and_llm_text(photos: Path) -> None:
    (document,) = TongyiImageReader().load_data(photos / "red.png")

    node = ImageNode(**{k: v for k, v in document.__dict__.items() if k != "text_resource"})
    embedded = node.get_content(MetadataMode.EMBED)
    for_llm = node.get_content(MetadataMode.LLM)

    # what an embedding model sees is the image's reference alone, which ours embeds as the image
    assert embedded == file_uri((photos / "red.png").resolve())
    assert "red.png" in for_llm and str((photos / "red.png").resolve()) in for_llm
    assert "file://" not in for_llm and "image/png" not in for_llm
    assert document.metadata["sha256"] not in for_llm


def test_recursive_and_globs(photos: Path) -> None:
    assert names(TongyiImageReader(recursive=True, on_error="ignore").load_data(photos)) == [
        "blue.jpg",
        "green.bmp",
        "red.png",
        "deep.png",
    ]
    assert names(TongyiImageReader().load_data(str(photos / "**" / "*.png"))) == [
        "red.png",
        "deep.png",
    ]
    reader = TongyiImageReader([photos / "red.png", str(photos / "*.jpg")])
    assert names(reader.load_data()) == ["red.png", "blue.jpg"]


def test_images_are_sniffed_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "photo.dat").write_bytes(png_bytes((5, 5, 5)))  # a PNG with an odd name

    (document,) = TongyiImageReader().load_data(tmp_path)

    assert document.metadata["mime_type"] == "image/png"


def test_bad_images_in_a_folder_are_reported_not_fatal(photos: Path) -> None:
    (photos / "fake.png").write_text("this is text with an image's name")
    whole = png_bytes((7, 7, 7), (64, 64))
    (photos / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (photos / "empty.jpg").write_bytes(b"")
    reader = TongyiImageReader()

    with pytest.warns(SkippedFileWarning) as caught:
        documents = reader.load_data(photos)

    assert names(documents) == ["blue.jpg", "green.bmp", "red.png"]
    assert [Path(e.path).name for e in reader.errors] == [
        "empty.jpg",
        "fake.png",
        "notes.txt",
        "truncated.png",
    ]
    assert [type(e.error).__name__ for e in reader.errors] == [
        "EmptyInputError",
        "UnsupportedMediaError",
        "UnsupportedMediaError",
        "CorruptMediaError",
    ]
    # one warning for the load, naming the first files and the count
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 4 files" in message and "empty.jpg" in message and "1 more" in message


def test_on_error_raise_stops_at_the_first_bad_image(photos: Path) -> None:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)

    with pytest.raises(CorruptMediaError, match=r"broken\.png"):
        TongyiImageReader(on_error="raise").load_data(photos)


def test_on_error_ignore_records_without_warning(photos: Path) -> None:
    (photos / "fake.jpg").write_text("nope")
    reader = TongyiImageReader(on_error="ignore")

    documents = reader.load_data(photos)  # a warning would fail the test (warnings are errors)

    assert len(documents) == 3
    assert [Path(e.path).name for e in reader.errors] == ["fake.jpg", "notes.txt"]
    assert "fake.jpg" in str(reader.errors[0])


def test_named_files_that_are_not_images_and_missing_paths_are_reported(photos: Path) -> None:
    reader = TongyiImageReader()

    with pytest.warns(SkippedFileWarning):
        documents = reader.load_data(
            [photos / "notes.txt", photos / "missing.png", str(photos / "*.gif")]
        )

    assert documents == []
    assert [type(e.error) for e in reader.errors] == [
        UnsupportedMediaError,
        MediaNotFoundError,
        MediaNotFoundError,
    ]


def test_errors_start_afresh_on_every_load(photos: Path) -> None:
    (photos / "fake.png").write_text("nope")
    reader = TongyiImageReader(on_error="ignore")
    reader.load_data(photos)
    (photos / "fake.png").unlink()

    reader.load_data(photos)

    assert [Path(e.path).name for e in reader.errors] == ["notes.txt"]


def test_reading_is_lazy(photos: Path) -> None:
    documents = TongyiImageReader(on_error="ignore").lazy_load_data(photos)

    first = next(iter(documents))
    write_image(photos / "red.png", (220, 20, 20), (50, 60))  # changed before it is read

    assert first.metadata["file_name"] == "blue.jpg"
    rest = list(documents)
    assert names(rest) == ["green.bmp", "red.png"]
    assert (rest[1].metadata["width"], rest[1].metadata["height"]) == (50, 60)


def test_filename_as_id_gives_stable_ids(photos: Path) -> None:
    first = TongyiImageReader(filename_as_id=True).load_data(photos / "red.png")
    again = TongyiImageReader(filename_as_id=True).load_data(photos / "red.png")

    assert first[0].id_ == again[0].id_ == str((photos / "red.png").resolve())


def test_works_as_a_file_extractor_of_simple_directory_reader(photos: Path) -> None:
    reader = TongyiImageReader()
    directory = SimpleDirectoryReader(
        str(photos),
        required_exts=[".png"],
        file_extractor={".png": reader},
    )

    (document,) = directory.load_data()

    assert isinstance(document, ImageDocument)
    assert document.metadata["width"] == 40
    assert document.metadata["file_name"] == "red.png"
    assert "creation_date" in document.metadata  # SimpleDirectoryReader's own metadata kept


def test_without_paths_the_reader_says_what_it_needs() -> None:
    with pytest.raises(ValueError, match="needs paths"):
        TongyiImageReader().load_data()
    with pytest.raises(ValueError, match="on_error"):
        TongyiImageReader(on_error="shout")  # type: ignore[arg-type]


def test_the_index_embeds_reader_documents_as_images(
    make_embedding: MakeEmbedding, photos: Path
) -> None:
    embedding = make_embedding()
    images = TongyiImageReader(on_error="ignore").load_data(photos)
    documents = [*images, Document(text="a red circle")]
    storage = StorageContext.from_defaults()

    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embedding, image_embed_model=embedding, storage_context=storage
    )

    image_store = storage.vector_stores["image"]
    text_store = storage.vector_stores["default"]
    assert len(image_store.data.embedding_dict) == 3  # type: ignore[attr-defined]
    assert len(text_store.data.embedding_dict) == 1  # type: ignore[attr-defined]
    nodes = index.as_retriever(image_similarity_top_k=3).text_to_image_retrieve("red")
    assert {n.node.metadata["file_name"] for n in nodes} == {"red.png", "blue.jpg", "green.bmp"}
    assert all(isinstance(n.node, ImageNode) and n.node.image_path for n in nodes)
    hit = index.as_retriever(image_similarity_top_k=1).image_to_image_retrieve(
        str(photos / "red.png")
    )
    assert hit[0].node.metadata["file_name"] == "red.png"
