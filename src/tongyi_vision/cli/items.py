"""What ``tongyi-vision embed`` embeds: text chunks, images and video clips, found by the
media-file catalogue under the paths it is given, and the index row each becomes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..index import Row
from ..media import imaging
from ..media.catalogue import MediaFile, SkippedFile, scan
from ..media.clips import DEFAULT_CLIP_SECONDS, iter_clips
from ..media.decoding import video_decoding_available
from ..media.image import Image
from ..media.parts import Part
from ..media.sources import path_text
from ..media.texts import split_text
from ..wire.errors import (
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    TongyiVisionError,
    UnsupportedMediaError,
)

Kind = Literal["text", "image", "video"]
# A text file larger than this is refused rather than read whole (a log, a dump, a link to
# /dev/zero would otherwise eat the memory): split it first.
MAX_TEXT_FILE_BYTES = 16 * 1024 * 1024
OnError = Literal["skip", "stop"]


@dataclass(frozen=True)
class Item:
    """One thing to embed: a text chunk, an image, or a video clip."""

    id: str
    source: str
    kind: Kind
    sha256: str
    metadata: dict[str, Any]
    content: str
    """The text itself, or the media reference (``file://`` URI) a document carries."""
    part: Callable[[], Part]
    file: Path | None = None
    """The image file whose header :func:`measure_images` reads (``None`` for the others)."""

    def row(self, vector: list[float]) -> Row:
        """The index row of this item, embedded as ``vector``."""
        metadata = dict(self.metadata)
        start = metadata.pop("start_seconds", None)
        end = metadata.pop("end_seconds", None)
        return Row(
            id=self.id,
            source=self.source,
            kind=self.kind,
            sha256=self.sha256,
            content=self.content,
            vector=vector,
            metadata=metadata,
            start_seconds=start,
            end_seconds=end,
        )


@dataclass(frozen=True)
class Failure:
    """An item (or a file) that could not be embedded, and why."""

    id: str
    error: TongyiVisionError


@dataclass
class Collected:
    """The items found under some paths, and what could not be read or was left out."""

    items: list[Item] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def collect_items(
    paths: Iterable[str | os.PathLike[str]],
    *,
    clip_seconds: float | None = None,
    on_error: OnError = "skip",
    exclude: Path | None = None,
) -> Collected:
    """Find every image, video and text file under ``paths``, as items to embed.

    Folders are walked recursively in name order, skipping hidden entries;
    files of other kinds inside folders are ignored (and listed), while a file
    named directly that is none of the three is an input error. A path that
    does not exist raises :class:`MediaNotFoundError` at once, whatever
    ``on_error`` says: it is a typo, not a bad file. ``exclude`` (the index being
    written, a folder) and everything in it are passed over, so an index kept inside a
    folder it indexes never indexes itself.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not os.path.lexists(root):
            raise MediaNotFoundError("no such file or folder; check the path", part=str(root))
    collected = Collected()
    inside = _inside(exclude) if exclude is not None else None
    real_path = _RealPaths()
    # Image headers are read later, for the images that are sent (see measure_images): a
    # re-run over files already in the index reads each file once, to hash it.
    for record in scan(roots, kinds=("image", "video", "text"), recursive=True, measure=False):
        if inside is not None and inside(record.path):
            continue
        if isinstance(record, SkippedFile):
            _failed(collected, record.path, record.error, on_error)
        elif record.kind is None:
            collected.ignored.append(record.text)
        else:
            try:
                collected.items.extend(_items_of(record, clip_seconds, real_path))
            except InputError as exc:
                _failed(collected, record.text, exc, on_error)
    return collected


def _inside(folder: Path) -> Callable[[str | os.PathLike[str]], bool]:
    """Whether a path is ``folder`` or in it: by its absolute path (no system call per file),
    and by its real path where ``folder`` is reached through a link."""
    given = os.path.abspath(folder)
    real = os.path.realpath(folder)
    prefixes = tuple({given + os.sep, real + os.sep})

    def inside(path: str | os.PathLike[str]) -> bool:
        absolute = os.path.abspath(path)
        if absolute in (given, real) or absolute.startswith(prefixes):
            return True
        if real == given:
            return False
        resolved = os.path.realpath(path)
        return resolved == real or resolved.startswith(real + os.sep)

    return inside


def measure_images(items: list[Item]) -> tuple[list[Item], list[Failure]]:
    """The items with each image's width and height in its metadata, read from its header
    (behind the decompression-bomb guard), and a failure for each image whose header is
    broken (left out of the items)."""
    if not imaging.pillow_available():
        return items, []
    kept: list[Item] = []
    failures: list[Failure] = []
    for item in items:
        if item.file is not None:
            try:
                width, height = imaging.image_size(os.fspath(item.file), description="")
            except InputError as exc:
                failures.append(Failure(item.id, exc))
                continue
            item.metadata.update(width=width, height=height)
        kept.append(item)
    return kept, failures


def _failed(collected: Collected, where: str, error: InputError, on_error: OnError) -> None:
    if on_error == "stop":
        raise error
    collected.failures.append(Failure(where, error))


class _RealPaths:
    """A file's real path, resolving each folder once: a file that is no link is its real
    folder plus its name (``os.path.realpath`` would walk every folder of every file)."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: Path) -> Path:
        text = os.fspath(path)
        if os.path.islink(text):
            return Path(os.path.realpath(text))
        folder, name = os.path.split(os.path.abspath(text))
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return Path(os.path.join(real, name))


def _items_of(file: MediaFile, clip_seconds: float | None, real_path: _RealPaths) -> list[Item]:
    real = real_path(file.path)
    source = path_text(real)
    base: dict[str, Any] = {"file_name": Path(file.text).name, "mime_type": file.mime_type}
    if file.kind == "image":
        metadata = {**base, "bytes": file.size}
        path = file.path
        return [
            Item(
                source,
                source,
                "image",
                file.digest(),
                metadata,
                real.as_uri(),
                lambda: Image(path),
                path,
            )
        ]
    if file.kind == "video":
        return _video_items(file, source, {**base, "bytes": file.size}, clip_seconds)
    return _text_items(file, source)


def _video_items(
    file: MediaFile, source: str, base: dict[str, Any], clip_seconds: float | None
) -> list[Item]:
    if not video_decoding_available():
        # Skip this file rather than stop the run at the first video.
        raise UnsupportedMediaError(
            "local videos are decoded with PyAV: pip install 'tongyi-vision[video]'",
            part=repr(file.text),
        )
    seconds = DEFAULT_CLIP_SECONDS if clip_seconds is None else clip_seconds
    items = []
    for clip in iter_clips(file.path, seconds):
        metadata = {
            **base,
            "start_seconds": clip.start_seconds,
            "end_seconds": clip.end_seconds,
            "duration": clip.duration,
        }
        clip_id = f"{source}#t={clip.start_seconds:g},{clip.end_seconds:g}"
        items.append(Item(clip_id, source, "video", file.digest(), metadata, clip.uri, clip.part))
    return items


def _text_items(file: MediaFile, source: str) -> list[Item]:
    if file.size > MAX_TEXT_FILE_BYTES:
        raise UnsupportedMediaError(
            f"is {file.size:,} bytes, over the {MAX_TEXT_FILE_BYTES:,}-byte limit for a text "
            "file; split it into smaller files",
            part=repr(file.text),
        )
    try:
        data = file.path.read_bytes()
    except OSError as exc:
        raise MediaNotFoundError(
            f"cannot be read ({exc.strerror or exc})", part=repr(file.text)
        ) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaError("is not UTF-8 text", part=repr(file.text)) from exc
    chunks = split_text(text)
    if not chunks:
        raise EmptyInputError("is an empty text file", part=repr(file.text))
    sha = file.digest()
    items = []
    for number, chunk in enumerate(chunks):
        item_id = source if len(chunks) == 1 else f"{source}#chunk={number}"
        metadata = {"file_name": Path(file.text).name, "chunk": number, "chunks": len(chunks)}
        items.append(Item(item_id, source, "text", sha, metadata, chunk, _text(chunk)))
    return items


def _text(chunk: str) -> Callable[[], Part]:
    return lambda: chunk
