"""Loaders that turn image and video files into LangChain documents holding media references.

An image document's ``page_content`` is the file's ``file://`` URI (or, on
request, a ``data:`` URI); a video clip's is the file's URI with a media
fragment, ``file:///talks/keynote.mp4#t=60,70``. :class:`TongyiVisionEmbeddings`
embeds such strings as the image or the clip itself, so the documents go into
any vector store through ``add_documents``. Files are found by the core's
media-file catalogue, lazily, and read only as far as their headers, so
loading a folder of thousands of files keeps memory flat.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.document_loaders import BaseBlobParser, BaseLoader
from langchain_core.documents.base import Blob, Document

from ..media.catalogue import (
    MediaFile,
    MediaKind,
    OnError,
    PathInput,
    SkippedFile,
    Skips,
    check_on_error,
    inspect_bytes,
    scan,
)
from ..media.clips import DEFAULT_CLIP_SECONDS, clip_bounds, clip_metadata, iter_clips
from ..media.decoding import DEFAULT_FRAMES
from ..media.references import Captioner, caption_for, captioned_reference, checked_captioner
from ..media.sources import read_file
from ..wire.errors import InputError, MediaNotFoundError
from ..wire.limits import MAX_IMAGES_PER_GROUP


class SkippedMediaWarning(UserWarning):
    """A loader skipped a file it could not read or that is not the medium it loads."""


class SkippedVideoWarning(SkippedMediaWarning):
    """A video loader skipped a file or a clip it could not read.

    A :class:`SkippedMediaWarning`, so one warnings filter covers images and video.
    """


class _CatalogueLoader(BaseLoader):
    """Files of one kind found by the catalogue, each turned into documents by ``_documents``;
    what is skipped is reported as the loader's ``on_error`` says."""

    _kind: MediaKind = "image"

    def __init__(
        self, path: PathInput | Sequence[PathInput], skips: Skips, *, glob: str, recursive: bool
    ) -> None:
        self.skips = skips
        if (
            path is None
            or isinstance(path, bytes)
            or not isinstance(path, (str, os.PathLike, Sequence))
        ):
            raise InputError(
                f"{type(self).__name__} takes a file, a folder, a glob pattern or a list of them, "
                f"not {type(path).__name__}"
            )
        self.paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        self.glob = glob
        self.recursive = recursive

    @property
    def errors(self) -> list[SkippedFile]:
        """Every file skipped so far, with the error that says why."""
        return self.skips.files

    def lazy_load(self) -> Iterator[Document]:
        """Yield the documents of each file in turn, in name order, read as it is reached;
        what is skipped makes one warning at the end of the load (``on_error="warn"``)."""
        found = scan(
            self.paths,
            kinds=(self._kind,),
            pattern=self.glob,
            recursive=self.recursive,
            report_others=True,
        )
        with self.skips.summarised():
            for record in found:
                if isinstance(record, SkippedFile):
                    self.skips(record)
                else:
                    yield from self._documents(record)

    def _documents(self, file: MediaFile) -> Iterator[Document]:
        raise NotImplementedError


def _blob_record(blob: Blob, kind: MediaKind) -> MediaFile | SkippedFile:
    """What a blob holds, by the catalogue's rules: a file it points to, or its bytes."""
    if blob.data is None and blob.path is not None:
        return next(iter(scan([blob.path], kinds=(kind,))))
    return inspect_bytes(blob.as_bytes(), str(blob.source or "<in-memory blob>"), (kind,))


class TongyiImageParser(BaseBlobParser):
    """Parses a blob holding an image into one document whose text is the image's reference.

    The text is the file's ``file://`` URI (a ``data:`` URI for in-memory
    blobs, or when ``as_data_uri=True``); metadata holds ``source``,
    ``mime_type``, ``bytes``, and ``width``/``height`` read from the header
    (``None`` without Pillow). Images are recognised by their first bytes:
    JPEG, PNG, BMP, and GIF, WEBP and TIFF, which the client re-encodes. Any
    other blob is skipped with a :class:`SkippedMediaWarning` (``on_error="warn"``),
    raises (``"raise"``) or is skipped quietly (``"ignore"``). ``caption`` as for
    :class:`TongyiImageLoader` (an in-memory blob's path is its ``source``).

    >>> loader = GenericLoader(FileSystemBlobLoader("photos/"), TongyiImageParser())
    """

    def __init__(
        self,
        *,
        as_data_uri: bool = False,
        on_error: OnError = "warn",
        caption: Captioner | None = None,
    ) -> None:
        self.as_data_uri = as_data_uri
        self.caption = checked_captioner(caption)
        self.skips = Skips(check_on_error(on_error), SkippedMediaWarning, "TongyiImageLoader")

    @property
    def on_error(self) -> OnError:
        return self.skips.on_error

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Yield the blob's document, or skip it as ``on_error`` says."""
        record = _blob_record(blob, "image")
        if isinstance(record, SkippedFile):
            self.skips(record)
            return
        yield self.document(record, {**blob.metadata, "source": blob.source or record.text}, blob)

    def document(
        self, image: MediaFile, metadata: dict[str, Any], blob: Blob | None = None
    ) -> Document:
        """The document of one image the catalogue found."""
        in_memory = blob is not None and blob.data is not None
        if self.as_data_uri or in_memory:
            # The file may have gone since it was found: that is a MediaNotFoundError.
            data = (
                blob.as_bytes()
                if blob is not None and in_memory
                else read_file(image.path, image.text)
            )
            content = f"data:{image.mime_type};base64,{base64.b64encode(data).decode('ascii')}"
            digest = hashlib.sha256(data).hexdigest()
        else:
            content = image.uri
            digest = image.digest()
        extra: dict[str, Any] = {}
        caption = caption_for(self.caption, image.path)
        if caption is not None:
            # The reference carries the caption: the embeddings make one fused vector of both.
            content = captioned_reference(content, caption)
            extra["caption"] = caption
        return Document(
            page_content=content,
            metadata={
                **metadata,
                "mime_type": image.mime_type,
                "bytes": image.size,
                "width": image.width,
                "height": image.height,
                # The content's hash: an image redrawn under the same name is a new document
                # to a record manager (index()) or a cache keyed on the document.
                "sha256": digest,
                **extra,
            },
        )


class TongyiImageLoader(_CatalogueLoader):
    """Loads images from a file, a folder, a glob pattern, or a list of them, lazily.

    One :class:`~langchain_core.documents.Document` per image; its text is the
    image's ``file://`` URI, which :class:`TongyiVisionEmbeddings` embeds as the
    image, so the documents go into any vector store with ``add_documents``.
    Metadata: ``source`` (the path), ``mime_type``, ``bytes``, ``width`` and
    ``height`` (``None`` without Pillow).

    Args:
        path: A file, a folder, a glob pattern such as ``"photos/**/*.jpg"`` (``**``
            crosses folders), or a list of them.
        glob: Which file names to take from a folder, as in a shell: ``*`` (the default)
            takes every file but hidden ones.
        recursive: Descend into the sub-folders of a folder.
        as_data_uri: Put a ``data:`` URI in the text instead of a ``file://`` URI,
            for stores that outlive the files; this holds each image in memory.
        on_error: A file that is not an image or cannot be read is skipped with a
            :class:`SkippedMediaWarning` (``"warn"``), raises (``"raise"``), or is
            skipped without a word (``"ignore"``).
        caption: A function of an image's path returning its caption (or ``None``).
            A captioned image's document is a *fused* one: its text is the image's
            reference with the caption in a ``#caption=`` fragment, which
            :class:`TongyiVisionEmbeddings` embeds as ONE vector of the caption and the
            image (dated snapshots, ``dialect="dashscope"``); ``metadata["caption"]``
            holds the caption.

    >>> docs = TongyiImageLoader("photos/", recursive=True).load()
    >>> docs[0].page_content, docs[0].metadata["width"]
    ('file:///home/me/photos/bike.jpg', 1024)
    >>> TongyiImageLoader("photos/", caption=lambda path: captions.get(path.name)).load()
    """

    def __init__(
        self,
        path: PathInput | Sequence[PathInput],
        *,
        glob: str = "*",
        recursive: bool = False,
        as_data_uri: bool = False,
        on_error: OnError = "warn",
        caption: Captioner | None = None,
    ) -> None:
        self.parser = TongyiImageParser(as_data_uri=as_data_uri, on_error=on_error, caption=caption)
        super().__init__(path, self.parser.skips, glob=glob, recursive=recursive)

    def _documents(self, file: MediaFile) -> Iterator[Document]:
        try:
            yield self.parser.document(file, {"source": file.text})
        except InputError as exc:
            self.skips(exc, file.text)


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
        self.skips = Skips(check_on_error(on_error), SkippedVideoWarning, "TongyiVideoLoader")
        if not 1 <= frames <= MAX_IMAGES_PER_GROUP:
            raise ValueError(f"frames must be between 1 and {MAX_IMAGES_PER_GROUP}, not {frames}")
        clip_bounds(1.0, clip_seconds)  # refuses a bad clip length now, not at the first file
        self.clip_seconds = clip_seconds
        self.frames = frames
        self.thumbnails_dir = Path(thumbnails_dir) if thumbnails_dir is not None else None
        self.thumbnail_size = thumbnail_size

    @property
    def on_error(self) -> OnError:
        return self.skips.on_error

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Yield the documents of the blob's clips, reading the file's headers first."""
        if blob.path is None:
            where = str(blob.source or "<in-memory blob>")
            message = "is in memory; video clips point into a file, so save it first"
            self.skips(MediaNotFoundError(message, part=repr(where)), where)
            return
        record = _blob_record(blob, "video")
        if isinstance(record, SkippedFile):
            self.skips(record)
            return
        yield from self.parse_file(record, dict(blob.metadata))

    def parse_file(
        self, video: MediaFile, extra: dict[str, Any] | None = None
    ) -> Iterator[Document]:
        """The documents of one video file's clips."""
        try:
            clips = list(iter_clips(video.path, self.clip_seconds, frames=self.frames))
            digest = video.digest()
        except InputError as exc:
            self.skips(exc, video.text)
            return
        for clip in clips:
            metadata: dict[str, Any] = {
                **(extra or {}),
                **clip_metadata(clip),
                "source": video.text,
                "sha256": digest,  # of the whole file: a re-encoded video changes every clip
            }
            if self.thumbnails_dir is not None:
                try:
                    thumbnail = clip.save_thumbnail(
                        self.thumbnails_dir, max_side=self.thumbnail_size
                    )
                except InputError as exc:
                    # A clip whose frames cannot be decoded would fail at embedding time too.
                    self.skips(exc, clip.uri)
                    continue
                metadata["thumbnail_path"] = str(thumbnail)
            # The clip URI as id: loading a folder again updates its clips in a store, not adds.
            yield Document(id=clip.uri, page_content=clip.uri, metadata=metadata)


class TongyiVideoLoader(_CatalogueLoader):
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
        path: A file, a folder, a glob pattern such as ``"talks/**/*.mp4"`` (``**``
            crosses folders), or a list of them.
        glob: Which file names to take from a folder; by default all but hidden files.
        recursive: Descend into the sub-folders of a folder.
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
        path: PathInput | Sequence[PathInput],
        *,
        glob: str = "[!.]*",
        recursive: bool = False,
        clip_seconds: float = DEFAULT_CLIP_SECONDS,
        frames: int = DEFAULT_FRAMES,
        thumbnails_dir: str | os.PathLike[str] | None = None,
        thumbnail_size: int = 512,
        on_error: OnError = "warn",
    ) -> None:
        self.parser = TongyiVideoParser(
            clip_seconds=clip_seconds,
            frames=frames,
            thumbnails_dir=thumbnails_dir,
            thumbnail_size=thumbnail_size,
            on_error=on_error,
        )
        super().__init__(path, self.parser.skips, glob=glob, recursive=recursive)

    _kind: MediaKind = "video"

    def _documents(self, file: MediaFile) -> Iterator[Document]:
        yield from self.parser.parse_file(file)
