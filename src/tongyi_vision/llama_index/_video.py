"""A LlamaIndex reader that turns videos into one indexable document per clip.

Why the reader embeds the clips itself: ``MultiModalVectorStoreIndex`` gives
its image embedding model nothing but each node's ``image_path``, and
``ImageDocument`` stores that as a ``pathlib.Path``, which cannot carry a time
range (``file:///v.mp4#t=10,20`` collapses to ``file:/v.mp4#t=10,20``). The one
thing both the index's text and image paths honour is a node's ``embedding``:
a node that has one is stored as it is. So the reader computes each clip's
vector (frames sampled from that clip, one ``multi_images`` group) with the
embedding model it is given, and the stored vector is the clip's own. The
``image_path`` is then free for what LlamaIndex uses it for when showing
results: a keyframe thumbnail of the clip, when ``thumbnails_dir`` is set.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument, MediaResource

from .._client import Client
from .._clips import (
    DEFAULT_CLIP_SECONDS,
    DEFAULT_FRAMES,
    VideoClip,
    clip_bounds,
    clip_metadata,
    iter_clips,
    video_files,
)
from .._exceptions import InputError
from .._limits import MAX_IMAGES_PER_GROUP
from .._video import Video
from ._readers import SkippedFileWarning

logger = logging.getLogger(__name__)

OnError = Literal["warn", "raise", "ignore"]
PathInput = str | os.PathLike[str]

# Metadata that describes the file rather than the moment: kept for filters and display,
# kept out of the text an LLM sees.
_NOT_FOR_LLM = ["mime_type", "width", "height", "clip_index", "thumbnail_path", "clip_uri"]


class VideoEmbedder(Protocol):
    """What the reader needs of an embedding model: ``TongyiVisionEmbedding`` has it."""

    def get_video_embedding_batch(
        self, videos: Sequence[Any], show_progress: bool = False
    ) -> list[list[float]]: ...


class SkippedVideoWarning(SkippedFileWarning):
    """A video reader skipped a file or a clip it could not read.

    A :class:`SkippedFileWarning`, so one warnings filter covers images and video.
    """


@dataclass(frozen=True)
class SkippedVideo:
    """A file or clip a reader skipped: where, and the error that says why."""

    path: str
    error: InputError

    def __str__(self) -> str:
        return f"{self.path}: {self.error.reason}"


class TongyiVideoReader(BaseReader):
    """One :class:`~llama_index.core.schema.ImageDocument` per video clip, carrying the clip's
    vector, for ``MultiModalVectorStoreIndex``.

    >>> embedding = TongyiVisionEmbedding()
    >>> documents = TongyiVideoReader(embedding, clip_seconds=10).load_data("talks/")
    >>> index = MultiModalVectorStoreIndex.from_documents(
    ...     documents, embed_model=embedding, image_embed_model=embedding
    ... )
    >>> index.as_retriever().text_to_image_retrieve("a slide with a bar chart")

    Each video is split into clips of ``clip_seconds``; each clip is embedded
    as up to ``frames`` frames sampled from its range (one vector) by
    ``embed_model`` while reading, and the vector is set as the document's
    ``embedding``, which the index stores instead of embedding the document
    again (see the module's notes for why). Use the same model for the index.
    Documents have empty text (so they live in the index's image store only)
    and metadata ``source``, ``file_name``, ``clip_index``, ``start_seconds``,
    ``end_seconds``, ``duration``, ``mime_type``, ``width``, ``height``,
    ``clip_uri`` (``file:///...#t=start,end``, which re-embeds the clip) and
    ``thumbnail_path``; with ``thumbnails_dir`` the thumbnail is also the
    document's ``image_path``.

    Args:
        embed_model: ``TongyiVisionEmbedding`` (anything with
            ``get_video_embedding_batch``) or a core :class:`~tongyi_vision.Client`.
        paths: Files, folders or glob patterns; or give them to :meth:`load_data`.
        clip_seconds: Length of a clip, 10 s by default.
        frames: Frames sampled per clip, 1 to 8.
        recursive: Descend into sub-folders (and let ``**`` match them in patterns).
        thumbnails_dir: Write a JPEG of each clip's middle frame here.
        on_error: A file that is not a video, or a clip that cannot be decoded, is
            skipped and recorded in :attr:`errors` with a :class:`SkippedVideoWarning`
            (``"warn"``), quietly (``"ignore"``), or raises (``"raise"``). Errors of
            the service itself always raise.
    """

    def __init__(
        self,
        embed_model: VideoEmbedder | Client,
        paths: PathInput | Sequence[PathInput] | None = None,
        *,
        clip_seconds: float = DEFAULT_CLIP_SECONDS,
        frames: int = DEFAULT_FRAMES,
        recursive: bool = False,
        glob: str = "[!.]*",
        thumbnails_dir: str | os.PathLike[str] | None = None,
        thumbnail_size: int = 512,
        on_error: OnError = "warn",
    ) -> None:
        if not isinstance(embed_model, Client) and not hasattr(
            embed_model, "get_video_embedding_batch"
        ):
            raise TypeError(
                "embed_model must be a TongyiVisionEmbedding (or have get_video_embedding_batch) "
                f"or a tongyi_vision.Client, not {type(embed_model).__name__}"
            )
        if on_error not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', not {on_error!r}")
        if not 1 <= frames <= MAX_IMAGES_PER_GROUP:
            raise ValueError(f"frames must be between 1 and {MAX_IMAGES_PER_GROUP}, not {frames}")
        clip_bounds(1.0, clip_seconds)  # refuses a bad clip length now, not at the first file
        self.embed_model = embed_model
        self.paths = paths
        self.clip_seconds = clip_seconds
        self.frames = frames
        self.recursive = recursive
        self.glob = glob
        self.thumbnails_dir = Path(thumbnails_dir) if thumbnails_dir is not None else None
        self.thumbnail_size = thumbnail_size
        self.on_error: OnError = on_error
        self.errors: list[SkippedVideo] = []

    def lazy_load_data(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        extra_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Iterator[Document]:
        """Yield the clip documents of each video in turn, files in name order.

        The clips of one video are embedded together (the client sends them
        concurrently); only their vectors are held, never their frames.
        ``extra_info`` is added to every document's metadata.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        chosen = self.paths if paths is None else paths
        if chosen is None:
            raise ValueError("TongyiVideoReader needs paths: a file, a folder or a glob")
        self.errors = []
        for found in video_files(chosen, pattern=self.glob, recursive=self.recursive):
            if isinstance(found, InputError):
                self._report(found.part.strip("'"), found)
                continue
            yield from self._documents(found, extra_info or {})

    def load_data(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        extra_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Every document of :meth:`lazy_load_data` in a list."""
        return list(self.lazy_load_data(paths, extra_info, **kwargs))

    def _documents(self, path: Path, extra: dict[str, Any]) -> Iterator[Document]:
        try:
            clips = list(iter_clips(path, self.clip_seconds, frames=self.frames))
        except InputError as exc:
            self._report(str(path), exc)
            return
        for clip, vector in zip(clips, self._embed(clips), strict=True):
            if vector is None:
                continue
            thumbnail: Path | None = None
            if self.thumbnails_dir is not None:
                try:
                    thumbnail = clip.save_thumbnail(
                        self.thumbnails_dir, max_side=self.thumbnail_size
                    )
                except InputError as exc:  # pragma: no cover - its frames were just embedded
                    self._report(clip.uri, exc)
                    continue
            yield self._document(clip, vector, thumbnail, extra)

    def _embed(self, clips: list[VideoClip]) -> list[list[float] | None]:
        """The clips' vectors in one call; if a clip cannot be decoded (say the lost end of a
        truncated file), again one clip at a time, so only the bad ones are skipped."""
        if not clips:
            return []
        try:
            return list(self._embed_parts([clip.part() for clip in clips]))
        except InputError as exc:
            if len(clips) == 1:
                self._report(clips[0].uri, exc)
                return [None]
            # The core's error carries what the call finished: those clips are not paid twice.
            partial = getattr(exc, "partial", None)
            done: list[list[float] | None] = [None] * len(clips)
            if partial is not None and len(partial.vectors) == len(clips):
                done = list(partial.vectors)
        return [
            v if v is not None else self._embed_one(c) for c, v in zip(clips, done, strict=True)
        ]

    def _embed_one(self, clip: VideoClip) -> list[float] | None:
        try:
            return self._embed_parts([clip.part()])[0]
        except InputError as exc:
            self._report(clip.uri, exc)
            return None

    def _embed_parts(self, parts: list[Video]) -> list[list[float]]:
        if isinstance(self.embed_model, Client):
            return self.embed_model.embed(parts).vectors
        return self.embed_model.get_video_embedding_batch(parts)

    def _document(
        self, clip: VideoClip, vector: list[float], thumbnail: Path | None, extra: dict[str, Any]
    ) -> Document:
        metadata: dict[str, Any] = {
            **extra,
            **clip_metadata(clip),
            "file_name": Path(clip.source).name,
            "clip_uri": clip.uri,
        }
        resource = None
        if thumbnail is not None:
            metadata["thumbnail_path"] = str(thumbnail)
            resource = MediaResource(path=thumbnail.resolve(), mimetype="image/jpeg")
        return ImageDocument(
            id_=clip.uri,
            text="",
            image_resource=resource,
            embedding=vector,
            metadata=metadata,
            # Nothing is embedded from text (the vector is given), but the index drops nodes
            # whose embeddable content is empty: leave it the file name and the times.
            excluded_embed_metadata_keys=[k for k in _NOT_FOR_LLM if k in metadata],
            excluded_llm_metadata_keys=[k for k in _NOT_FOR_LLM if k in metadata],
        )

    def _report(self, where: str, error: InputError) -> None:
        if self.on_error == "raise":
            raise error
        self.errors.append(SkippedVideo(where, error))
        if self.on_error == "warn":
            warnings.warn(
                f"TongyiVideoReader skipped {where}: {error.reason}",
                SkippedVideoWarning,
                stacklevel=4,
            )
        logger.debug("skipped %s: %s", where, error)
