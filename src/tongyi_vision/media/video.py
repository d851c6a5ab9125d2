"""Video parts, and how each kind of source reaches the service.

The service takes a video by URL; some gateways (and the emulator, in the
openai dialect) also take a ``data:video/...;base64,`` URI of up to 10 MB.
A local file therefore has two ways in: its frames (``strategy="frames"``,
the default: up to eight frames sampled with PyAV, sent as one
``multi_images`` group that gives one vector) or the whole file as a data URI
(``strategy="data_uri"``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal, get_args

from ..wire.errors import InputError, MediaTooLargeError
from ..wire.formats import HEAD_BYTES, VIDEO_MIME_TYPES
from ..wire.limits import MAX_IMAGES_PER_GROUP, MAX_VIDEO_BYTES, parameter_problem
from . import decoding, sources
from .prepared import (
    DATA_URI_OVERHEAD,
    IMAGE_PARAMETERS,
    VIDEO_PARAMETERS,
    Content,
    Prepared,
    constant,
    digest,
    finish,
    with_options,
)

VideoStrategy = Literal["url", "data_uri", "frames"]
VideoSource = str | os.PathLike[str] | bytes | bytearray | memoryview

_STRATEGIES: tuple[str, ...] = get_args(VideoStrategy)
# What each kind of source may use; the first is its default.
_ALLOWED: dict[str, tuple[VideoStrategy, ...]] = {
    "url": ("url",),
    "data": ("data_uri", "frames"),
    "path": ("frames", "data_uri"),
    "bytes": ("frames", "data_uri"),
}
# Base64 of an 8-frame group at the per-frame budget of the frame sampler.
_FRAME_HINT = sources.base64_length(decoding.FRAME_MAX_BYTES) + DATA_URI_OVERHEAD


class Video:
    """A video: an http(s) URL, a local path or ``file://`` URI, a data URI, or bytes.

    How it reaches the service depends on ``strategy``:

    - ``"frames"`` (default for local files and bytes): up to ``frames`` (at
      most 8) frames spread over the video, or over ``[start, end]`` seconds,
      are decoded with PyAV, scaled to at most 1024 px on the long side and
      sent as JPEGs in one ``multi_images`` group: one vector. Needs the
      ``video`` extra. Counts as ``frames`` images against the per-request
      limit.
    - ``"data_uri"`` (default for ``data:video/...`` strings): the whole file
      as a base64 data URI of at most 10 MB, for gateways that accept it.
    - ``"url"`` (the only choice for http(s) URLs): passed on as it is.

    A ``file://`` URI may carry a time range as a media fragment:
    ``Video("file:///talks/keynote.mp4#t=60,70")`` is the same as
    ``Video("/talks/keynote.mp4", start=60, end=70)``.

    >>> Video("https://example.com/clip.mp4"), Video("keynote.mp4", start=60, end=70)

    The file is checked (exists, container sniffed from its magic bytes, size
    for ``data_uri``) when a call starts; frames are decoded only when the
    request that carries them is built.

    For a video the service samples itself (a URL, or ``"data_uri"``), ``fps``
    (a sampling RATIO in [0, 1], not frames per second; default 1.0) and
    ``max_video_frames`` (at most 64, dated snapshots only; default 8) tell it
    how, over the client's settings. Frames sampled here take ``frames`` instead.

    >>> Video("https://example.com/clip.mp4", fps=0.5, max_video_frames=16)
    """

    __slots__ = ("end", "fps", "frames", "max_video_frames", "source", "start", "strategy")

    def __init__(
        self,
        source: VideoSource,
        *,
        strategy: VideoStrategy | None = None,
        start: float | None = None,
        end: float | None = None,
        frames: int = MAX_IMAGES_PER_GROUP,
        fps: float | None = None,
        max_video_frames: int | None = None,
    ) -> None:
        for name, value in (("fps", fps), ("max_video_frames", max_video_frames)):
            problem = None if value is None else parameter_problem(name, value)
            if problem:
                raise InputError(problem)
        if isinstance(source, (bytearray, memoryview)):
            source = bytes(source)
        if not isinstance(source, (str, bytes, os.PathLike)):
            raise InputError(
                f"Video takes a URL, a path, a data URI or bytes, not {type(source).__name__}"
            )
        if strategy is not None and strategy not in _STRATEGIES:
            raise InputError(
                f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, not {strategy!r}"
            )
        if isinstance(frames, bool) or not isinstance(frames, int):
            raise InputError(f"frames must be an int, not {type(frames).__name__}")
        if not 1 <= frames <= MAX_IMAGES_PER_GROUP:
            raise InputError(
                f"frames must be between 1 and {MAX_IMAGES_PER_GROUP} "
                f"(the images that make one vector), not {frames}"
            )
        if isinstance(source, str) and source.startswith("file://"):
            fragment_start, fragment_end = sources.time_fragment_of(source)
            # Explicit arguments win over the reference's fragment.
            start = fragment_start if start is None else start
            end = fragment_end if end is None else end
        for name, value in (("start", start), ("end", end)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InputError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if start is not None and end is not None and end <= start:
            raise InputError(f"end ({end}) must be after start ({start})")
        self.source: str | os.PathLike[str] | bytes = source
        self.strategy: VideoStrategy | None = strategy
        self.start = float(start) if start is not None else None
        self.end = float(end) if end is not None else None
        self.frames = frames
        self.fps = fps
        self.max_video_frames = max_video_frames

    def __repr__(self) -> str:
        if isinstance(self.source, bytes):
            what = f"<{len(self.source):,} bytes>"
        else:
            what = sources.describe(os.fspath(self.source))
        options = [
            f"{name}={value!r}"
            for name, value in (
                ("strategy", self.strategy),
                ("start", self.start),
                ("end", self.end),
                ("fps", self.fps),
                ("max_video_frames", self.max_video_frames),
            )
            if value is not None
        ]
        if self.frames != MAX_IMAGES_PER_GROUP:
            options.append(f"frames={self.frames}")
        return f"Video({', '.join([what, *options])})"

    def _identity(self) -> tuple[object, ...]:
        return (
            self.source,
            self.strategy,
            self.start,
            self.end,
            self.frames,
            self.fps,
            self.max_video_frames,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Video) and other._identity() == self._identity()

    def __hash__(self) -> int:
        return hash(("video", *self._identity()))

    # --- checking up front ---

    def _kind(self) -> str:
        if isinstance(self.source, bytes):
            return "bytes"
        text = os.fspath(self.source)
        if sources.is_url(text):
            return "url"
        if text.startswith("data:"):
            return "data"
        return "path"

    def resolved_strategy(self) -> VideoStrategy:
        """The strategy this video is sent with: the one given, or its source's default."""
        kind = self._kind()
        allowed = _ALLOWED[kind]
        if self.strategy is None:
            return allowed[0]
        if self.strategy not in allowed:
            what = {
                "url": "a URL",
                "data": "a data URI",
                "path": "a local file",
                "bytes": "bytes",
            }[kind]
            raise InputError(
                f"strategy {self.strategy!r} does not apply to {what}; "
                f"use {' or '.join(map(repr, allowed))}",
                part=self._description(),
            )
        return self.strategy

    def _description(self) -> str:
        if isinstance(self.source, bytes):
            return f"<{len(self.source):,} bytes of video>"
        text = os.fspath(self.source)
        if text.startswith("data:") or sources.is_url(text):
            return sources.describe(text)
        return sources.describe_path(text)

    def prepare(self, *, defer_checks: bool = False) -> Prepared:
        """Check the video and return how to load it; raises :class:`InputError` subclasses.

        With ``defer_checks`` the costly check (opening the container) is left to the
        returned part's ``check``, which the client runs for the parts it sends.
        """
        part = self._prepare()
        if part.kind == "multi_images":
            # frames sampled here are images: the resolution tier applies, not the sampling
            return finish(replace(part, uses=IMAGE_PARAMETERS), defer_checks)
        part = replace(part, uses=VIDEO_PARAMETERS, videos=1)
        part = with_options(part, fps=self.fps, max_video_frames=self.max_video_frames)
        return finish(part, defer_checks)

    def _prepare(self) -> Prepared:
        strategy = self.resolved_strategy()
        description = self._description()
        if strategy == "frames" and (self.fps is not None or self.max_video_frames is not None):
            raise InputError(
                "fps and max_video_frames tell the service how to sample a video it receives "
                "whole; this one's frames are sampled here (strategy='frames'): use frames=... "
                "or send it by URL",
                part=description,
            )
        if strategy != "frames" and (self.start is not None or self.end is not None):
            raise InputError(
                f"a time range needs strategy='frames'; {strategy!r} sends the whole video",
                part=description,
            )
        source = self.source
        if strategy == "url":
            url = str(os.fspath(source))
            return constant("video", "v:" + url, description, {"video": url}, "url:" + url)
        if strategy == "data_uri":
            if self._kind() == "data":
                return _prepare_given_data_uri(str(os.fspath(source)), description)
            return self._prepare_data_uri(description)
        return self._prepare_frames(description)

    def _prepare_data_uri(self, description: str) -> Prepared:
        """A local file or bytes sent whole, as a data URI of at most 10 MB."""
        read: Callable[[], bytes]
        identity: Callable[[], str]
        if isinstance(self.source, bytes):
            data = self.source
            size, head, key = len(data), data[:HEAD_BYTES], "v:" + digest(data)
            read = lambda: data  # noqa: E731
            identity = lambda: key  # noqa: E731
        else:
            path = sources.path_from(self.source)
            size, head = sources.read_head(path, description)
            key = "vd:" + _file_identity(path)
            read = lambda: sources.read_file(path, description)  # noqa: E731
            identity = lambda: "v:" + sources.file_digest(path, description)  # noqa: E731
        mime = VIDEO_MIME_TYPES[sources.sniff_video(head, size, description)]
        _check_video_size(size, description)

        def load() -> Content:
            data = read()
            # The file may have grown since it was checked.
            _check_video_size(len(data), description)
            return {"video": sources.data_uri(mime, data)}

        hint = sources.base64_length(size) + DATA_URI_OVERHEAD
        return Prepared("video", key, description, hint, 0, 0, load, identity)

    def _prepare_frames(self, description: str) -> Prepared:
        """Frames sampled from the video (or its time range), sent as one image group."""
        decoding.require_av(f"Sampling frames from {description}")
        source: str | bytes
        if isinstance(self.source, bytes) or self._kind() == "data":
            source = (
                self.source
                if isinstance(self.source, bytes)
                else sources.decode_data_uri(
                    str(os.fspath(self.source)), description, medium="video"
                )
            )
            sources.sniff_video(source[:HEAD_BYTES], len(source), description)
            named = digest(source)
            content: Callable[[], str] = lambda: named  # noqa: E731
        else:
            path = sources.path_from(self.source)
            size, head = sources.read_head(path, description)
            sources.sniff_video(head, size, description)
            source, named = str(path), _file_identity(path)
            content = lambda: sources.file_digest(path, description)  # noqa: E731
        start, end, count = self.start, self.end, self.frames
        key = f"vf:{named}:{start}:{end}:{count}"

        def load() -> Content:
            frames = decoding.sample_frames(source, start=start, end=end, count=count)
            return {"multi_images": [sources.data_uri("image/jpeg", f.jpeg) for f in frames]}

        def identity() -> str:
            # The frames sent follow from the file, the range, the count and the sampler.
            sampler = decoding.SAMPLER_VERSION
            return f"vf:{content()}:{start}:{end}:{count}:s{sampler}"

        def check() -> None:
            decoding.check_range(source, start=start, end=end)

        hint = count * _FRAME_HINT
        return Prepared("multi_images", key, description, hint, count, 0, load, identity, check)


def _file_identity(path: Path) -> str:
    """A local file within a call: the same file (device and inode, so links to it too), size
    and modification time are one part."""
    stat = path.stat()
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def _check_video_size(size: int, description: str) -> None:
    if size > MAX_VIDEO_BYTES:
        raise MediaTooLargeError(
            f"is {size:,} bytes, over the {MAX_VIDEO_BYTES:,}-byte (10 MB) limit for a video "
            "sent as a data URI; use strategy='frames' (the default for local files) or "
            "split it into clips with iter_clips",
            part=description,
        )


def _prepare_given_data_uri(uri: str, description: str) -> Prepared:
    """A caller's ``data:video/...`` URI: checked from its length and first bytes, sent as is."""
    payload = uri.partition(",")[2]
    # The first 88 base64 characters are 66 bytes: enough to sniff the container.
    head = sources.decode_data_uri(uri[: len(uri) - len(payload) + 88], description, medium="video")
    size = len(payload) * 3 // 4
    _check_video_size(size, description)
    sources.sniff_video(head, size, description)
    key = "v:" + digest(uri.encode())
    return constant("video", key, description, {"video": uri}, key)
