"""Video parts, and how each kind of source reaches the service.

The service takes a video by URL; some gateways (and the emulator, in the
openai dialect) also take a ``data:video/...;base64,`` URI of up to 10 MB.
A local file therefore has two ways in: its frames (``strategy="frames"``,
the default: up to eight frames sampled with PyAV, sent as one
``multi_images`` group that gives one vector) or the whole file as a data URI
(``strategy="data_uri"``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import re
import urllib.parse
from pathlib import Path
from typing import Literal, get_args

from ._exceptions import EmptyInputError, InputError, MediaTooLargeError, UnsupportedMediaError
from ._limits import MAX_IMAGES_PER_GROUP, MAX_VIDEO_BYTES, VIDEO_MIME_TYPES, sniff_video_format
from ._parts import (
    Content,
    Prepared,
    _b64_len,
    _data_uri,
    _is_url,
    _path_from,
    _read_file,
    _read_head,
    describe,
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
_FRAME_HINT = _b64_len(512 * 1024) + 40


def format_seconds(value: float) -> str:
    """Seconds as a media fragment writes them: ``10``, ``2.5``, ``0.333``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _parse_time(text: str, fragment: str) -> float:
    text = text.strip()
    if text.startswith("npt:"):
        text = text[4:]
    clock = _CLOCK.match(text)
    try:
        if clock:
            hours, minutes, seconds = clock.groups()
            value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"the media fragment #{fragment} has an invalid time {text!r}; "
            "write #t=start,end in seconds, e.g. #t=10,20"
        )
    return value


def parse_time_fragment(fragment: str) -> tuple[float | None, float | None]:
    """The ``(start, end)`` of a W3C temporal media fragment, ``(None, None)`` without one.

    Accepts ``t=10,20``, ``t=10``, ``t=,20``, ``t=npt:10,20`` and clock times
    (``t=00:01:30,00:02:00``); other fragment keys are ignored.

    >>> parse_time_fragment("t=10,20")
    (10.0, 20.0)
    """
    for item in fragment.split("&"):
        key, _, value = item.partition("=")
        if key != "t":
            continue
        value = urllib.parse.unquote(value)
        first, _, second = value.partition(",")
        start = _parse_time(first, fragment) if first.strip() else None
        end = _parse_time(second, fragment) if second.strip() else None
        return start, end
    return None, None


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
    """

    __slots__ = ("end", "frames", "source", "start", "strategy")

    def __init__(
        self,
        source: VideoSource,
        *,
        strategy: VideoStrategy | None = None,
        start: float | None = None,
        end: float | None = None,
        frames: int = MAX_IMAGES_PER_GROUP,
    ) -> None:
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
            fragment = urllib.parse.urldefrag(source).fragment
            fragment_start, fragment_end = parse_time_fragment(fragment)
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

    def __repr__(self) -> str:
        if isinstance(self.source, bytes):
            what = f"<{len(self.source):,} bytes>"
        else:
            what = describe(os.fspath(self.source))
        options = [
            f"{name}={value!r}"
            for name, value in (
                ("strategy", self.strategy),
                ("start", self.start),
                ("end", self.end),
            )
            if value is not None
        ]
        if self.frames != MAX_IMAGES_PER_GROUP:
            options.append(f"frames={self.frames}")
        return f"Video({', '.join([what, *options])})"

    def _identity(self) -> tuple[object, ...]:
        return (self.source, self.strategy, self.start, self.end, self.frames)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Video) and other._identity() == self._identity()

    def __hash__(self) -> int:
        return hash(("video", *self._identity()))

    # --- checking up front ---

    def _kind(self) -> str:
        if isinstance(self.source, bytes):
            return "bytes"
        text = os.fspath(self.source)
        if _is_url(text):
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
        if text.startswith("data:") or _is_url(text):
            return describe(text)
        # Keep the end of a long path: the file name says more than the folders above it.
        return repr(text if len(text) <= 72 else "..." + text[-69:])

    def prepare(self) -> Prepared:
        """Check the video and return how to load it; raises :class:`InputError` subclasses."""
        strategy = self.resolved_strategy()
        description = self._description()
        if strategy != "frames" and (self.start is not None or self.end is not None):
            raise InputError(
                f"a time range needs strategy='frames'; {strategy!r} sends the whole video",
                part=description,
            )
        kind = self._kind()
        if strategy == "url":
            url = os.fspath(self.source)
            assert isinstance(url, str)
            return Prepared(
                "video", "v:" + url, description, len(url) + 16, 0, 0, lambda: {"video": url}
            )
        if strategy == "data_uri":
            return self._prepare_data_uri(kind, description)
        return self._prepare_frames(kind, description)

    def _local(self) -> Path:
        text = os.fspath(self.source)
        assert isinstance(text, str)
        if text.startswith("file://"):
            return _path_from(urllib.parse.urldefrag(text).url)
        return Path(text)

    def _prepare_data_uri(self, kind: str, description: str) -> Prepared:
        if kind == "data":
            uri = os.fspath(self.source)
            assert isinstance(uri, str)
            return _prepare_given_data_uri(uri, description)
        if isinstance(self.source, bytes):
            data = self.source
            fmt = _sniff_or_raise(data[:64], len(data), description)
            _check_video_size(len(data), description)
            mime = VIDEO_MIME_TYPES[fmt]
            key = "v:" + hashlib.sha256(data).hexdigest()
            return Prepared(
                "video",
                key,
                description,
                _b64_len(len(data)) + 40,
                0,
                0,
                lambda: {"video": _data_uri(mime, data)},
            )
        path = self._local()
        size, head = _read_head(path, description)
        fmt = _sniff_or_raise(head, size, description)
        _check_video_size(size, description)
        mime = VIDEO_MIME_TYPES[fmt]
        stat = path.stat()
        key = f"vd:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

        def load() -> Content:
            data = _read_file(path, description)
            # The file may have grown since it was checked.
            _check_video_size(len(data), description)
            return {"video": _data_uri(mime, data)}

        return Prepared("video", key, description, _b64_len(size) + 40, 0, 0, load)

    def _prepare_frames(self, kind: str, description: str) -> Prepared:
        from ._clips import require_av

        require_av(f"Sampling frames from {description}")
        source: str | bytes
        if kind == "data":
            uri = os.fspath(self.source)
            assert isinstance(uri, str)
            source = _decode_data_uri(uri, description)
            _sniff_or_raise(source[:64], len(source), description)
            identity = hashlib.sha256(source).hexdigest()
        elif isinstance(self.source, bytes):
            source = self.source
            _sniff_or_raise(source[:64], len(source), description)
            identity = hashlib.sha256(source).hexdigest()
        else:
            path = self._local()
            size, head = _read_head(path, description)
            _sniff_or_raise(head, size, description)
            stat = path.stat()
            source = str(path)
            identity = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        start, end, count = self.start, self.end, self.frames
        key = f"vf:{identity}:{start}:{end}:{count}"

        def load() -> Content:
            from ._clips import sample_frames

            frames = sample_frames(source, start=start, end=end, count=count)
            return {"multi_images": [_data_uri("image/jpeg", f.jpeg) for f in frames]}

        return Prepared("multi_images", key, description, count * _FRAME_HINT, count, 0, load)


def _sniff_or_raise(head: bytes, size: int, description: str) -> str:
    if size == 0:
        raise EmptyInputError("video is empty", part=description)
    fmt = sniff_video_format(head)
    if fmt is None:
        raise UnsupportedMediaError(
            f"is not a video container the service takes ({', '.join(sorted(VIDEO_MIME_TYPES))})",
            part=description,
        )
    return fmt


def _check_video_size(size: int, description: str) -> None:
    if size > MAX_VIDEO_BYTES:
        raise MediaTooLargeError(
            f"is {size:,} bytes, over the {MAX_VIDEO_BYTES:,}-byte (10 MB) limit for a video "
            "sent as a data URI; use strategy='frames' (the default for local files) or "
            "split it into clips with iter_clips",
            part=description,
        )


def _decode_data_uri(uri: str, description: str) -> bytes:
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise UnsupportedMediaError("is not a base64 video data URI", part=description)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedMediaError("has invalid base64", part=description) from exc


def _prepare_given_data_uri(uri: str, description: str) -> Prepared:
    """A caller's ``data:video/...`` URI: checked from its length and first bytes, sent as is."""
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise UnsupportedMediaError("is not a base64 video data URI", part=description)
    size = len(payload) * 3 // 4
    _check_video_size(size, description)
    try:
        head = base64.b64decode(payload[:88], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedMediaError("has invalid base64", part=description) from exc
    _sniff_or_raise(head, size, description)
    key = "v:" + hashlib.sha256(uri.encode()).hexdigest()
    return Prepared("video", key, description, len(uri) + 16, 0, 0, lambda: {"video": uri})
