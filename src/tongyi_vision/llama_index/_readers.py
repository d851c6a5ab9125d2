"""``TongyiImageReader``: image files as documents ``MultiModalVectorStoreIndex`` indexes.

Documents point at their file (``image_path``) instead of carrying it as
base64, so reading a folder of thousands of images keeps one file's header in
memory at a time; the embedding model reads each file when its request is built.
"""

from __future__ import annotations

import glob
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument, MediaResource

from .._exceptions import (
    CorruptMediaError,
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    MissingDependencyError,
    UnsupportedMediaError,
)
from .._files import walk_folder
from .._limits import sniff_image_format

logger = logging.getLogger(__name__)

OnError = Literal["warn", "raise", "ignore"]
PathInput = str | os.PathLike[str]

_HEAD = 64
_GLOB_CHARS = frozenset("*?[")
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)
_IMAGE_MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
}
# Metadata that describes the file rather than its content: kept on the node for
# filtering and display, kept out of the text an embedding model or an LLM sees.
_NOT_EMBEDDED = ["file_path", "mime_type", "bytes", "width", "height"]
_NOT_FOR_LLM = ["mime_type", "bytes", "width", "height"]


class SkippedFileWarning(UserWarning):
    """A reader skipped a file it could not read as an image."""


@dataclass(frozen=True)
class ReaderError:
    """A file a reader skipped: its path and the error that says why."""

    path: str
    error: InputError

    def __str__(self) -> str:
        return f"{self.path}: {self.error.reason}"


@dataclass(frozen=True)
class _Candidate:
    path: Path
    # Named by the caller (not found by walking a folder or a glob): a file that is
    # not media is then an error rather than something to pass over.
    explicit: bool


class _MediaReader(BaseReader):
    """Finding files (paths, folders, globs) and reporting bad ones; subclasses make documents."""

    _kind = "media"
    _suffixes: frozenset[str] = frozenset()

    def __init__(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        *,
        recursive: bool = False,
        on_error: OnError = "warn",
        exclude_hidden: bool = True,
        filename_as_id: bool = False,
    ) -> None:
        if on_error not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', not {on_error!r}")
        self.paths = paths
        self.recursive = recursive
        self.on_error: OnError = on_error
        self.exclude_hidden = exclude_hidden
        self.filename_as_id = filename_as_id
        self.errors: list[ReaderError] = []

    def lazy_load_data(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> Iterator[Document]:
        """Yield one document per file of ``paths`` (or of the paths given at construction).

        A path is a file, a folder (its files; subfolders too with
        ``recursive=True``) or a glob pattern (``**`` matches across folders).
        Files are sniffed by their first bytes, not their names. A file that
        cannot be read is skipped and recorded in :attr:`errors` (with a
        :class:`SkippedFileWarning` unless ``on_error="ignore"``), or raises its
        :class:`~tongyi_vision.InputError` with ``on_error="raise"``. Files in a
        folder that are neither media nor named like media (notes, hidden
        files) are passed over silently. ``extra_info`` is added to every
        document's metadata (how ``SimpleDirectoryReader`` passes its own).
        """
        if fs is not None:
            raise ValueError(f"{type(self).__name__} reads local files only; fs is not supported")
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        chosen = self.paths if paths is None else paths
        if chosen is None:
            raise ValueError(f"{type(self).__name__} needs paths: a file, a folder or a glob")
        self.errors = []
        for candidate in self._candidates(chosen):
            try:
                document = self._document(candidate)
            except InputError as exc:
                self._report(str(candidate.path), exc)
                continue
            if document is None:
                logger.debug("not %s, passed over: %s", self._kind, candidate.path)
                continue
            if extra_info:
                document.metadata.update(extra_info)
            if self.filename_as_id:
                document.id_ = str(candidate.path.resolve())
            yield document

    def load_data(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Every document of :meth:`lazy_load_data` in a list."""
        return list(self.lazy_load_data(paths, extra_info, fs, **kwargs))

    def _document(self, candidate: _Candidate) -> Document | None:
        raise NotImplementedError

    def _report(self, path: str, error: InputError) -> None:
        if self.on_error == "raise":
            raise error
        self.errors.append(ReaderError(path, error))
        if self.on_error == "warn":
            warnings.warn(
                f"{type(self).__name__} skipped {path}: {error.reason}",
                SkippedFileWarning,
                stacklevel=3,
            )

    def _candidates(self, paths: PathInput | Sequence[PathInput]) -> Iterator[_Candidate]:
        items: Iterable[PathInput] = (
            [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        )
        for item in items:
            text = os.fspath(item)
            if _GLOB_CHARS.intersection(text) and not Path(text).exists():
                matches = sorted(glob.glob(text, recursive=True))
                if not matches:
                    self._report(text, MediaNotFoundError("no file matches", part=repr(text)))
                for match in matches:
                    path = Path(match)
                    if path.is_file() and not self._hidden(path.name):
                        yield _Candidate(path, explicit=False)
                continue
            path = Path(text).expanduser()
            if path.is_dir():
                yield from self._walk(path)
            elif path.exists() or path.is_symlink():
                yield _Candidate(path, explicit=True)
            else:
                self._report(text, MediaNotFoundError("file not found", part=repr(text)))

    def _walk(self, folder: Path) -> Iterator[_Candidate]:
        # Sorted, so documents come in the same order on every run and every machine.
        for found in walk_folder(folder, "*", self.recursive, hidden=not self.exclude_hidden):
            if isinstance(found, MediaNotFoundError):
                self._report(str(folder), found)
            else:
                yield _Candidate(found, explicit=False)

    def _hidden(self, name: str) -> bool:
        return self.exclude_hidden and name.startswith(".")

    def _head(self, candidate: _Candidate) -> tuple[int, bytes]:
        description = repr(str(candidate.path))
        try:
            size = candidate.path.stat().st_size
            with candidate.path.open("rb") as handle:
                head = handle.read(_HEAD)
        except OSError as exc:
            raise MediaNotFoundError(
                f"cannot be read ({exc.strerror or exc})", part=description
            ) from exc
        if size == 0 and (candidate.explicit or candidate.path.suffix.lower() in self._suffixes):
            raise EmptyInputError("file is empty", part=description)
        return size, head

    def _not_media(self, candidate: _Candidate) -> None:
        """Raise if a file that is not this reader's media should have been; else pass it over."""
        if candidate.explicit or candidate.path.suffix.lower() in self._suffixes:
            raise UnsupportedMediaError(
                f"is not {'an' if self._kind[0] in 'aeiou' else 'a'} {self._kind} "
                "(its first bytes match no known format)",
                part=repr(str(candidate.path)),
            )


def _base_metadata(path: Path, mime_type: str, size: int) -> dict[str, Any]:
    return {
        "file_name": path.name,
        "file_path": str(path.resolve()),
        "mime_type": mime_type,
        "bytes": size,
    }


class TongyiImageReader(_MediaReader):
    """One :class:`~llama_index.core.schema.ImageDocument` per image file.

    >>> reader = TongyiImageReader(recursive=True)
    >>> documents = reader.load_data(["photos/", "scans/*.png"])
    >>> reader.errors                      # files skipped, and why

    Each document has ``image_path`` set (no base64 copy in memory), empty text
    (so the index embeds it as an image, not as text), and metadata
    ``file_name``, ``file_path``, ``mime_type``, ``bytes``, ``width`` and
    ``height``. JPEG, PNG and BMP go to the service as they are; GIF, WEBP and
    TIFF are read too, and the embedding model re-encodes them (``auto_fit``).
    Each image's header is checked with Pillow, and PNGs are checked to the
    end, so a truncated or corrupt file is reported here rather than failing a
    whole batch at embedding time. Also usable as a ``file_extractor`` of
    ``SimpleDirectoryReader``.
    """

    _kind = "image"
    _suffixes = IMAGE_SUFFIXES

    def _document(self, candidate: _Candidate) -> Document | None:
        size, head = self._head(candidate)
        fmt = sniff_image_format(head)
        if fmt is None:
            self._not_media(candidate)
            return None
        width, height = _check_image(candidate.path, fmt)
        mime_type = _IMAGE_MIME_TYPES[fmt]
        metadata = _base_metadata(candidate.path, mime_type, size)
        metadata.update(width=width, height=height)
        # image_resource directly: ImageDocument(image_path=...) would open the file again.
        return ImageDocument(
            image_resource=MediaResource(path=candidate.path.resolve(), mimetype=mime_type),
            metadata=metadata,
            excluded_embed_metadata_keys=list(_NOT_EMBEDDED),
            excluded_llm_metadata_keys=list(_NOT_FOR_LLM),
        )


def _check_image(path: Path, fmt: str) -> tuple[int, int]:
    """Width and height, raising :class:`CorruptMediaError` if Pillow cannot read the file."""
    try:
        from PIL import Image as PILImage
    except ImportError as exc:  # pragma: no cover - Pillow comes with llama-index-core
        raise MissingDependencyError("Pillow", "image", "TongyiImageReader") from exc
    try:
        with PILImage.open(path) as image:
            width, height = image.size
            image.verify()
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise CorruptMediaError(
            f"looks like {fmt.upper()} but cannot be decoded ({exc})", part=repr(str(path))
        ) from exc
    return width, height
