"""Loaders that turn image and video files into LangChain documents holding media references.

A document's ``page_content`` is the file's ``file://`` URI (or, on request, a
``data:`` URI), which :class:`TongyiVisionEmbeddings` embeds as the image or
video itself. Files are found lazily and read only as far as their headers, so
loading a folder of thousands of images keeps memory flat.
"""

from __future__ import annotations

import base64
import glob as globlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from langchain_core.document_loaders import BaseBlobParser, BaseLoader
from langchain_core.documents.base import Blob, Document

from .. import _imaging
from .._exceptions import (
    EmptyInputError,
    MediaNotFoundError,
    TongyiVisionError,
    UnsupportedMediaError,
)
from .._files import walk_folder
from .._limits import IMAGE_MIME_TYPES, sniff_image_format
from .._references import file_uri

OnError = Literal["warn", "raise", "ignore"]
PathSource = Union[str, "os.PathLike[str]"]

# Formats the loaders accept as images: the service's own, and those the core re-encodes.
_IMAGE_MIME_TYPES = {
    **IMAGE_MIME_TYPES,
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
}
_HEAD = 64
_GLOB_CHARS = frozenset("*?[")


class SkippedMediaWarning(UserWarning):
    """A loader skipped a file it could not read or that is not the medium it loads."""


class _MediaParser(BaseBlobParser):
    """One document per blob, whose text is a media reference; subclasses say which medium."""

    kind = "media"

    def __init__(self, *, as_data_uri: bool = False, on_error: OnError = "warn") -> None:
        if on_error not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', not {on_error!r}")
        self.as_data_uri = as_data_uri
        self.on_error: OnError = on_error

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Yield the blob's document, or skip it as ``on_error`` says."""
        source = blob.source or "<in-memory blob>"
        try:
            document = self._document(blob, source)
        except OSError as exc:
            self._skip(
                MediaNotFoundError(f"cannot be read ({exc.strerror or exc})", part=source), exc
            )
            return
        except TongyiVisionError as exc:
            self._skip(exc)
            return
        yield document

    def _skip(self, error: TongyiVisionError, cause: BaseException | None = None) -> None:
        """Raise ``error``, warn about it, or say nothing, as ``on_error`` says."""
        if self.on_error == "raise":
            raise error from cause
        if self.on_error == "warn":
            warnings.warn(f"skipped {error}", SkippedMediaWarning, stacklevel=3)

    def _document(self, blob: Blob, source: str) -> Document:
        path: Path | None = None
        data: bytes | None = None
        if blob.data is None and blob.path is not None:
            path = Path(os.fspath(blob.path))
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(_HEAD)
        else:
            data = blob.as_bytes()
            size, head = len(data), data[:_HEAD]
        if size == 0:
            raise EmptyInputError("file is empty", part=source)
        mime = self._mime_type(head, source)
        metadata: dict[str, Any] = {**blob.metadata, "source": source, "mime_type": mime}
        metadata["bytes"] = size
        metadata.update(self._details(path if path is not None else data, source))
        if path is not None and not self.as_data_uri:
            content = file_uri(os.fspath(path))
        else:
            payload = data if data is not None else blob.as_bytes()
            content = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
        return Document(page_content=content, metadata=metadata)

    def _mime_type(self, head: bytes, source: str) -> str:
        raise NotImplementedError

    def _details(self, content: Path | bytes | None, source: str) -> dict[str, Any]:
        return {}


class TongyiImageParser(_MediaParser):
    """Parses a blob holding an image into one document whose text is the image's reference.

    The text is the file's ``file://`` URI (a ``data:`` URI for in-memory
    blobs, or when ``as_data_uri=True``); metadata holds ``source``,
    ``mime_type``, ``bytes``, and ``width``/``height`` read from the header
    (``None`` without Pillow). Images are recognised by their first bytes:
    JPEG, PNG, BMP, and GIF, WEBP and TIFF, which the client re-encodes. Any
    other blob is skipped with a :class:`SkippedMediaWarning` (``on_error="warn"``),
    raises (``"raise"``) or is skipped quietly (``"ignore"``).

    >>> loader = GenericLoader(FileSystemBlobLoader("photos/"), TongyiImageParser())
    """

    kind = "image"

    def _mime_type(self, head: bytes, source: str) -> str:
        fmt = sniff_image_format(head)
        if fmt is None:
            raise UnsupportedMediaError(
                "is not an image (JPEG, PNG, BMP, GIF, WEBP or TIFF)", part=source
            )
        return _IMAGE_MIME_TYPES[fmt]

    def _details(self, content: Path | bytes | None, source: str) -> dict[str, Any]:
        width: int | None = None
        height: int | None = None
        if content is not None and _imaging.pillow_available():
            # Pillow reads only the header here; a broken header is a corrupt image.
            opened = content if isinstance(content, bytes) else os.fspath(content)
            with _imaging.open_image(opened, description=source) as image:
                width, height = image.width, image.height
        return {"width": width, "height": height}


class _MediaLoader(BaseLoader):
    def __init__(
        self,
        parser: _MediaParser,
        path: PathSource | Sequence[PathSource],
        *,
        glob: str,
        recursive: bool,
    ) -> None:
        self.paths: list[PathSource] = (
            [path] if isinstance(path, (str, os.PathLike)) else list(path)
        )
        self.glob = glob
        self.recursive = recursive
        self.parser = parser

    def lazy_load(self) -> Iterator[Document]:
        """Yield one document per file, in name order, reading each as it is reached."""
        for file in self._files():
            yield from self.parser.lazy_parse(Blob.from_path(file))

    def _files(self) -> Iterator[Path]:
        for item in self.paths:
            text = os.fspath(item)
            path = Path(text)
            if path.is_dir():
                yield from self._walk(path)
            elif path.exists() or not _GLOB_CHARS.intersection(text):
                # A missing file reaches the parser, which reports it.
                yield path
            else:
                matches = globlib.iglob(text, recursive=self.recursive)
                yield from (Path(m) for m in sorted(matches) if Path(m).is_file())

    def _walk(self, folder: Path) -> Iterator[Path]:
        for found in walk_folder(folder, self.glob, self.recursive):
            if isinstance(found, MediaNotFoundError):
                self.parser._skip(found)
            else:
                yield found


class TongyiImageLoader(_MediaLoader):
    """Loads images from a file, a folder, a glob pattern, or a list of them, lazily.

    One :class:`~langchain_core.documents.Document` per image; its text is the
    image's ``file://`` URI, which :class:`TongyiVisionEmbeddings` embeds as the
    image, so the documents go into any vector store with ``add_documents``.
    Metadata: ``source`` (the path), ``mime_type``, ``bytes``, ``width`` and
    ``height`` (``None`` without Pillow).

    Args:
        path: A file, a folder, a glob pattern such as ``"photos/**/*.jpg"``, or a list of them.
        glob: Which file names to take from a folder, as in a shell: ``*`` (the default)
            takes every file but hidden ones.
        recursive: Descend into sub-folders (and let ``**`` match them in patterns).
        as_data_uri: Put a ``data:`` URI in the text instead of a ``file://`` URI,
            for stores that outlive the files; this holds each image in memory.
        on_error: A file that is not an image or cannot be read is skipped with a
            :class:`SkippedMediaWarning` (``"warn"``), raises (``"raise"``), or is
            skipped without a word (``"ignore"``).

    >>> docs = TongyiImageLoader("photos/", recursive=True).load()
    >>> docs[0].page_content, docs[0].metadata["width"]
    ('file:///home/me/photos/bike.jpg', 1024)
    """

    def __init__(
        self,
        path: PathSource | Sequence[PathSource],
        *,
        glob: str = "*",
        recursive: bool = False,
        as_data_uri: bool = False,
        on_error: OnError = "warn",
    ) -> None:
        super().__init__(
            TongyiImageParser(as_data_uri=as_data_uri, on_error=on_error),
            path,
            glob=glob,
            recursive=recursive,
        )
