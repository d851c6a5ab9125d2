"""Readers that turn image and video files into documents ``MultiModalVectorStoreIndex`` indexes.

Files are found by the core's media-file catalogue. Image documents point at
their file (``image_path``) instead of carrying it as base64, so reading a
folder of thousands of images keeps one file's header in memory at a time.

Why the video reader embeds the clips itself: ``MultiModalVectorStoreIndex``
gives its image embedding model nothing but each node's ``image_path``, and
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

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument, MediaResource

from ..engine.client import Client
from ..media import catalogue
from ..media.catalogue import MediaFile, OnError, PathInput, SkippedFile, Skips
from ..media.clips import DEFAULT_CLIP_SECONDS, VideoClip, clip_bounds, clip_metadata, iter_clips
from ..media.decoding import DEFAULT_FRAMES
from ..media.references import Captioner, caption_for, captioned_reference, checked_captioner
from ..media.sources import file_uri
from ..wire.errors import InputError
from ..wire.limits import MAX_IMAGES_PER_GROUP

# An image document's embeddable content is its file:// URI alone, which
# TongyiVisionEmbedding's text methods embed as the image (so an index built with
# Settings.embed_model stores the image's vector, not that of its file name). The
# rest of the metadata is for filtering and display; an LLM sees the name and path.
_IMAGE_URI = "image_uri"
_IMAGE_NOT_FOR_LLM = ["mime_type", "bytes", "width", "height", "sha256", _IMAGE_URI]
_CLIP_NOT_FOR_LLM = [
    "mime_type",
    "width",
    "height",
    "clip_index",
    "thumbnail_path",
    "clip_uri",
    "sha256",
]

ReaderError = SkippedFile
"""A file a reader skipped: its ``path`` and the ``error`` that says why."""
SkippedVideo = SkippedFile
"""A file or clip the video reader skipped: its ``path`` and the ``error`` that says why."""


class SkippedFileWarning(UserWarning):
    """A reader skipped a file it could not read as an image."""


class SkippedVideoWarning(SkippedFileWarning):
    """A video reader skipped a file or a clip it could not read.

    A :class:`SkippedFileWarning`, so one warnings filter covers images and video.
    """


class VideoEmbedder(Protocol):
    """What the reader needs of an embedding model: ``TongyiVisionEmbedding`` has it."""

    def get_video_embedding_batch(
        self, videos: Sequence[Any], show_progress: bool = False
    ) -> list[list[float]]: ...


class _MediaReader(BaseReader):
    """Paths to documents through the catalogue; subclasses say which kind and which documents."""

    _kind: catalogue.MediaKind = "image"
    _warning: type[UserWarning] = SkippedFileWarning

    def __init__(
        self,
        paths: PathInput | Sequence[PathInput] | None,
        *,
        recursive: bool,
        on_error: OnError,
        glob: str = "*",
        hidden: bool = False,
    ) -> None:
        self.paths = paths
        self.recursive = recursive
        self.glob = glob
        self.hidden = hidden
        self.on_error: OnError = catalogue.check_on_error(on_error)
        self.errors: list[SkippedFile] = []

    def lazy_load_data(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> Iterator[Document]:
        """Yield the documents of ``paths`` (or of the paths given at construction).

        A path is a file, a folder (its files; subfolders too with
        ``recursive=True``) or a glob pattern (``**`` matches across folders).
        Files are sniffed by their first bytes, not their names. A file that
        cannot be read, or in a folder is not of the reader's kind, is skipped and
        recorded in :attr:`errors` (one warning sums up a load's skips unless
        ``on_error="ignore"``), or raises its :class:`~tongyi_vision.InputError`
        with ``on_error="raise"``.
        ``extra_info`` is added to every document's metadata (how
        ``SimpleDirectoryReader`` passes its own).
        """
        if fs is not None:
            raise ValueError(f"{type(self).__name__} reads local files only; fs is not supported")
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        chosen = self.paths if paths is None else paths
        if chosen is None:
            raise InputError(f"{type(self).__name__} needs paths: a file, a folder or a glob")
        skips = Skips(self.on_error, self._warning, type(self).__name__)
        self.errors = skips.files
        found = catalogue.scan(
            chosen,
            kinds=(self._kind,),
            pattern=self.glob,
            recursive=self.recursive,
            hidden=self.hidden,
            report_others=True,
            verify=self._kind == "image",
        )
        with skips.summarised():
            for record in found:
                if isinstance(record, SkippedFile):
                    skips(record)
                else:
                    yield from self._documents(record, extra_info or {}, skips)

    def load_data(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Every document of :meth:`lazy_load_data` in a list."""
        return list(self.lazy_load_data(paths, extra_info, fs, **kwargs))

    def _documents(
        self, file: MediaFile, extra: dict[str, Any], skips: Skips
    ) -> Iterator[Document]:
        raise NotImplementedError


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
    Each image's header is checked with Pillow (decompression bombs refused),
    and PNGs are checked to the end, so a truncated or corrupt file is reported
    here rather than failing a whole batch at embedding time. A file in a folder
    that is not an image is recorded in :attr:`errors`, and one warning per load
    sums up what was skipped. Also usable as a ``file_extractor`` of
    ``SimpleDirectoryReader``.

    ``caption``, a function of an image's path returning its caption (or ``None``),
    makes *fused* documents (dated snapshots, ``dialect="dashscope"``): the caption
    goes in ``metadata["caption"]`` (which the LLM sees), and the embed content
    becomes the image's URI with the caption in a ``#caption=`` fragment, which
    :class:`TongyiVisionEmbedding` embeds as ONE vector of the caption and the image,
    through its text methods (a plain ``VectorStoreIndex``) and as a transformation
    (``IngestionPipeline``, or ``transformations=[embedding]`` for a
    ``MultiModalVectorStoreIndex``, whose image path would see the pixels alone).

    >>> TongyiImageReader(caption=lambda path: captions.get(path.name)).load_data("photos/")
    """

    def __init__(
        self,
        paths: PathInput | Sequence[PathInput] | None = None,
        *,
        recursive: bool = False,
        on_error: OnError = "warn",
        exclude_hidden: bool = True,
        filename_as_id: bool = False,
        caption: Captioner | None = None,
    ) -> None:
        captioner = checked_captioner(caption)
        super().__init__(paths, recursive=recursive, on_error=on_error, hidden=not exclude_hidden)
        self.exclude_hidden = exclude_hidden
        self.filename_as_id = filename_as_id
        self.caption = captioner

    def _documents(
        self, file: MediaFile, extra: dict[str, Any], skips: Skips
    ) -> Iterator[Document]:
        absolute = file.path.resolve()
        try:
            digest = file.digest()
        except InputError as exc:  # gone since it was found
            skips(exc, file.text)
            return
        caption = caption_for(self.caption, file.path)
        uri = file_uri(absolute)
        metadata: dict[str, Any] = {
            "file_name": Path(file.text).name,
            "file_path": str(Path(file.text).resolve()),
            "mime_type": file.mime_type,
            "bytes": file.size,
            "width": file.width,
            "height": file.height,
            "sha256": digest,
            **extra,
            **({"caption": caption} if caption is not None else {}),
            # a captioned image's reference carries its caption: embedded as one fused vector
            _IMAGE_URI: uri if caption is None else captioned_reference(uri, caption),
        }
        document = ImageDocument(
            # image_resource directly: ImageDocument(image_path=...) would open the file again.
            image_resource=MediaResource(path=absolute, mimetype=file.mime_type),
            # an empty text resource, not text="" (which leaves none): without one a
            # document has no content at all, and an index given it unparsed drops it
            text_resource=MediaResource(text=""),
            metadata=metadata,
            excluded_embed_metadata_keys=[k for k in metadata if k != _IMAGE_URI],
            excluded_llm_metadata_keys=[k for k in _IMAGE_NOT_FOR_LLM if k in metadata],
            # The content to embed is the URI alone, not "image_uri: file:///..."
            metadata_template="{value}",
            text_template="{metadata_str}",
        )
        if self.filename_as_id:
            document.id_ = str(absolute)
        yield document


class TongyiVideoReader(_MediaReader):
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
        embed_model: ``TongyiVisionEmbedding`` or a core :class:`~tongyi_vision.Client`
            (a clip that cannot be decoded is then skipped alone, and the others
            are paid for once), or anything else with ``get_video_embedding_batch``
            (a file with a bad clip is then skipped whole).
        paths: Files, folders or glob patterns; or give them to :meth:`load_data`.
        clip_seconds: Length of a clip, 10 s by default.
        frames: Frames sampled per clip, 1 to 8.
        recursive: Descend into sub-folders of a folder.
        thumbnails_dir: Write a JPEG of each clip's middle frame here.
        on_error: A file that is not a video, or a clip that cannot be decoded, is
            skipped and recorded in :attr:`errors` with a :class:`SkippedVideoWarning`
            (``"warn"``), quietly (``"ignore"``), or raises (``"raise"``). Errors of
            the service itself always raise.
    """

    _kind: catalogue.MediaKind = "video"
    _warning = SkippedVideoWarning

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
        if not 1 <= frames <= MAX_IMAGES_PER_GROUP:
            raise ValueError(f"frames must be between 1 and {MAX_IMAGES_PER_GROUP}, not {frames}")
        clip_bounds(1.0, clip_seconds)  # refuses a bad clip length now, not at the first file
        super().__init__(paths, recursive=recursive, on_error=on_error, glob=glob)
        self.embed_model = embed_model
        self.clip_seconds = clip_seconds
        self.frames = frames
        self.thumbnails_dir = Path(thumbnails_dir) if thumbnails_dir is not None else None
        self.thumbnail_size = thumbnail_size

    def _documents(
        self, file: MediaFile, extra: dict[str, Any], skips: Skips
    ) -> Iterator[Document]:
        """The clip documents of one video; its clips are embedded together (concurrently),
        and only their vectors are held, never their frames."""
        try:
            clips = list(iter_clips(file.path, self.clip_seconds, frames=self.frames))
            digest = file.digest()
            vectors = self._embed(clips, skips)
        except InputError as exc:
            skips(exc, file.text)
            return
        for clip, vector in zip(clips, vectors, strict=True):
            if vector is None:
                continue
            thumbnail: Path | None = None
            if self.thumbnails_dir is not None:
                try:
                    thumbnail = clip.save_thumbnail(
                        self.thumbnails_dir, max_side=self.thumbnail_size
                    )
                except InputError as exc:  # pragma: no cover - its frames were just embedded
                    skips(exc, clip.uri)
                    continue
            yield self._document(clip, vector, thumbnail, {**extra, "sha256": digest})

    def _embed(self, clips: list[VideoClip], skips: Skips) -> list[list[float] | None]:
        """The clips' vectors in one best-effort call of the core: a clip that cannot be
        decoded (say the lost end of a truncated file) is skipped, the others are paid once."""
        parts = [clip.part() for clip in clips]
        core = self.embed_model if isinstance(self.embed_model, Client) else None
        core = core or getattr(self.embed_model, "client", None)
        if not isinstance(core, Client):
            return list(self.embed_model.get_video_embedding_batch(parts))  # type: ignore[union-attr]
        if self.on_error == "raise":
            return list(core.embed(parts).vectors)
        result = core.embed(parts, on_invalid="skip")
        for index, error in sorted(result.errors.items()):
            if not isinstance(error, InputError):
                raise error  # the service refused a clip: not a file problem
            skips(error, clips[index].uri)
        return result.vectors

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
            # an empty text resource, not text="" (which leaves none): without one a
            # document has no content at all, and an index given it unparsed drops it
            text_resource=MediaResource(text=""),
            image_resource=resource,
            embedding=vector,
            metadata=metadata,
            # Nothing is embedded from text (the vector is given), but the index drops nodes
            # whose embeddable content is empty: leave it the file name and the times.
            excluded_embed_metadata_keys=[k for k in _CLIP_NOT_FOR_LLM if k in metadata],
            excluded_llm_metadata_keys=[k for k in _CLIP_NOT_FOR_LLM if k in metadata],
        )
