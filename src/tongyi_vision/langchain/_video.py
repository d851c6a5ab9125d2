"""A LangChain loader that turns videos into one document per clip.

A clip's ``page_content`` is its ``file://`` URI with a media fragment
(``file:///talks/keynote.mp4#t=60,70``). :class:`TongyiVisionEmbeddings`
embeds such a string as frames sampled from that time range, so the documents
go into any vector store through ``add_documents``, and a text or image query
comes back with the moment it matches.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from langchain_core.document_loaders import BaseBlobParser, BaseLoader
from langchain_core.documents.base import Blob, Document

from .._clips import (
    DEFAULT_CLIP_SECONDS,
    DEFAULT_FRAMES,
    clip_bounds,
    clip_metadata,
    iter_clips,
    video_files,
)
from .._exceptions import InputError, MediaNotFoundError, TongyiVisionError
from .._limits import MAX_IMAGES_PER_GROUP
from ._loaders import SkippedMediaWarning

OnError = Literal["warn", "raise", "ignore"]
PathSource = Union[str, "os.PathLike[str]"]


class SkippedVideoWarning(SkippedMediaWarning):
    """A video loader skipped a file or a clip it could not read.

    A :class:`SkippedMediaWarning`, so one warnings filter covers images and video.
    """


class TongyiVideoParser(BaseBlobParser):
    """Parses a blob holding a video file into one document per clip.

    Usable with ``GenericLoader`` and ``FileSystemBlobLoader``. Clips point
    into the file, so the blob must have a path; an in-memory blob is
    reported as ``on_error`` says. Arguments as for :class:`TongyiVideoLoader`.

    >>> GenericLoader(FileSystemBlobLoader("talks/", glob="*.mp4"), TongyiVideoParser()).load()
    """

    def __init__(
        self,
        *,
        clip_seconds: float = DEFAULT_CLIP_SECONDS,
        frames: int = DEFAULT_FRAMES,
        thumbnails_dir: str | os.PathLike[str] | None = None,
        thumbnail_size: int = 512,
        on_error: OnError = "warn",
    ) -> None:
        if on_error not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', not {on_error!r}")
        if not 1 <= frames <= MAX_IMAGES_PER_GROUP:
            raise ValueError(f"frames must be between 1 and {MAX_IMAGES_PER_GROUP}, not {frames}")
        clip_bounds(1.0, clip_seconds)  # refuses a bad clip length now, not at the first file
        self.clip_seconds = clip_seconds
        self.frames = frames
        self.thumbnails_dir = Path(thumbnails_dir) if thumbnails_dir is not None else None
        self.thumbnail_size = thumbnail_size
        self.on_error: OnError = on_error

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Yield the documents of the blob's clips, reading the file's headers first."""
        if blob.path is None:
            self.skip(
                MediaNotFoundError(
                    "is in memory; video clips point into a file, so save it first",
                    part=str(blob.source or "<in-memory blob>"),
                )
            )
            return
        yield from self.parse_file(Path(os.fspath(blob.path)), dict(blob.metadata))

    def parse_file(self, path: Path, extra: dict[str, Any] | None = None) -> Iterator[Document]:
        """The documents of one video file's clips."""
        try:
            clips = list(iter_clips(path, self.clip_seconds, frames=self.frames))
        except InputError as exc:
            self.skip(exc)
            return
        for clip in clips:
            metadata: dict[str, Any] = {**(extra or {}), **clip_metadata(clip)}
            metadata["source"] = str(path)
            if self.thumbnails_dir is not None:
                try:
                    thumbnail = clip.save_thumbnail(
                        self.thumbnails_dir, max_side=self.thumbnail_size
                    )
                except InputError as exc:
                    # A clip whose frames cannot be decoded would fail at embedding time too.
                    self.skip(exc)
                    continue
                metadata["thumbnail_path"] = str(thumbnail)
            # The clip URI as id: loading a folder again updates its clips in a store, not adds.
            yield Document(id=clip.uri, page_content=clip.uri, metadata=metadata)

    def skip(self, error: TongyiVisionError) -> None:
        """Raise ``error``, warn about it, or say nothing, as ``on_error`` says."""
        if self.on_error == "raise":
            raise error
        if self.on_error == "warn":
            warnings.warn(f"skipped {error}", SkippedVideoWarning, stacklevel=3)


class TongyiVideoLoader(BaseLoader):
    """Loads videos from a file, a folder, a glob pattern, or a list of them, one document
    per clip, lazily.

    Each video is split into clips of ``clip_seconds`` (the last one may be
    shorter; one under a second joins the clip before it). A clip's
    ``page_content`` is its reference, ``file:///path/video.mp4#t=10,20``,
    which :class:`TongyiVisionEmbeddings` embeds as up to ``frames`` frames
    sampled from that range: one vector per clip. Metadata: ``source`` (the
    file), ``clip_index``, ``start_seconds``, ``end_seconds``, ``duration`` (of
    the whole video), ``mime_type``, ``width``, ``height``, and
    ``thumbnail_path`` when ``thumbnails_dir`` is given.

    Only headers are read while loading; frames are decoded when the
    documents are embedded, one clip at a time. Needs the ``video`` extra.

    Args:
        path: A file, a folder, a glob pattern such as ``"talks/**/*.mp4"``, or a list of them.
        glob: Which file names to take from a folder; by default all but hidden files.
        recursive: Descend into sub-folders (and let ``**`` match them in patterns).
        clip_seconds: Length of a clip, 10 s by default.
        frames: Frames sampled per clip, 1 to 8.
        thumbnails_dir: Write a JPEG of each clip's middle frame here (this decodes
            one frame per clip while loading, which also catches clips that cannot
            be decoded, such as the lost end of a truncated file).
        thumbnail_size: Long side of the thumbnails, in pixels.
        on_error: A file that is not a video, cannot be read or cannot be decoded is
            skipped with a :class:`SkippedVideoWarning` (``"warn"``), raises its
            :class:`~tongyi_vision.InputError` (``"raise"``), or is skipped quietly
            (``"ignore"``).

    >>> store = InMemoryVectorStore(TongyiVisionEmbeddings())
    >>> store.add_documents(TongyiVideoLoader("talks/", clip_seconds=10).load())
    >>> store.similarity_search("a slide with a bar chart", k=1)[0].metadata["start_seconds"]
    130.0
    """

    def __init__(
        self,
        path: PathSource | Sequence[PathSource],
        *,
        glob: str = "[!.]*",
        recursive: bool = False,
        clip_seconds: float = DEFAULT_CLIP_SECONDS,
        frames: int = DEFAULT_FRAMES,
        thumbnails_dir: str | os.PathLike[str] | None = None,
        thumbnail_size: int = 512,
        on_error: OnError = "warn",
    ) -> None:
        self.paths: list[PathSource] = (
            [path] if isinstance(path, (str, os.PathLike)) else list(path)
        )
        self.glob = glob
        self.recursive = recursive
        self.parser = TongyiVideoParser(
            clip_seconds=clip_seconds,
            frames=frames,
            thumbnails_dir=thumbnails_dir,
            thumbnail_size=thumbnail_size,
            on_error=on_error,
        )

    def lazy_load(self) -> Iterator[Document]:
        """Yield the clips of each video in turn, files in name order."""
        for found in video_files(self.paths, pattern=self.glob, recursive=self.recursive):
            if isinstance(found, InputError):
                self.parser.skip(found)
                continue
            yield from self.parser.parse_file(found)
