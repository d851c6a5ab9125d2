"""What ``tongyi-vision embed`` embeds: text chunks, images and video clips, found by the
media-file catalogue under the paths it is given."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..media.catalogue import MediaFile, SkippedFile, scan
from ..media.clips import DEFAULT_CLIP_SECONDS, iter_clips
from ..media.decoding import video_decoding_available
from ..media.image import Image
from ..media.parts import Part
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
    part: Callable[[], Part]


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
    written) is passed over, so an index kept inside a folder it indexes never
    indexes itself.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not os.path.lexists(root):
            raise MediaNotFoundError("no such file or folder; check the path", part=str(root))
    collected = Collected()
    for record in scan(roots, kinds=("image", "video", "text"), recursive=True):
        if exclude is not None and _same_file(Path(record.path), exclude):
            continue
        if isinstance(record, SkippedFile):
            _failed(collected, record.path, record.error, on_error)
        elif record.kind is None:
            collected.ignored.append(record.text)
        else:
            try:
                collected.items.extend(_items_of(record, clip_seconds))
            except InputError as exc:
                _failed(collected, record.text, exc, on_error)
    return collected


def _same_file(path: Path, other: Path) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def _failed(collected: Collected, where: str, error: InputError, on_error: OnError) -> None:
    if on_error == "stop":
        raise error
    collected.failures.append(Failure(where, error))


def _items_of(file: MediaFile, clip_seconds: float | None) -> list[Item]:
    source = str(Path(file.text).resolve())
    base: dict[str, Any] = {"file_name": Path(file.text).name, "mime_type": file.mime_type}
    if file.kind == "image":
        metadata = {**base, "bytes": file.size}
        if file.width is not None:
            metadata.update(width=file.width, height=file.height)
        path = file.path
        return [Item(source, source, "image", file.digest(), metadata, lambda: Image(path))]
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
        items.append(Item(clip_id, source, "video", file.digest(), metadata, clip.part))
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
        items.append(Item(item_id, source, "text", sha, {**metadata, "text": chunk}, _text(chunk)))
    return items


def _text(chunk: str) -> Callable[[], Part]:
    return lambda: chunk
