"""Decoding local videos with PyAV: probing their headers and sampling frames.

The service embeds at most eight images into one vector, so a local video (or
one clip of it) becomes up to eight JPEG frames spread over its time range.
Everything here streams: a call decodes one clip at a time, converts only the
frames it keeps, and holds at most ``count`` encoded JPEGs, so memory does not
grow with the length of the video.

PyAV and Pillow (the ``video`` extra) are imported inside the functions that
need them; ``import tongyi_vision`` never loads them.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..wire.errors import (
    CorruptMediaError,
    InputError,
    MediaNotFoundError,
    MissingDependencyError,
    UnsupportedMediaError,
)
from ..wire.formats import HEAD_BYTES, VIDEO_MIME_TYPES
from ..wire.limits import MAX_IMAGES_PER_GROUP
from .sources import describe_path, format_seconds, path_from, read_head, sniff_video

VideoSource = str | os.PathLike[str] | bytes

DEFAULT_FRAMES = 8
# Bumped whenever the sampling below changes the frames sent for the same clip, so that the
# embedding cache does not serve a clip's vector made from other frames.
SAMPLER_VERSION = 1
# Frames are scaled so their long side is at most this: the model sees far less, and eight
# frames of a 4K video would otherwise make a body of tens of megabytes.
FRAME_MAX_SIDE = 1024
# Per-frame budget: eight frames stay near 4 MB of JPEG, under the request-size limit.
FRAME_MAX_BYTES = 512 * 1024
_JPEG_QUALITIES = (85, 75, 60)
# Beyond this gap to the next sampled frame, seeking to a keyframe beats decoding through.
_SEEK_GAP_SECONDS = 4.0


def require_av(purpose: str) -> Any:
    """Import PyAV (and check Pillow) or raise :class:`MissingDependencyError` naming ``video``."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise MissingDependencyError("av", "video", purpose) from exc
    try:
        import PIL  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise MissingDependencyError("Pillow", "video", purpose) from exc
    return av


def video_decoding_available() -> bool:
    """Whether PyAV and Pillow are installed (the ``video`` extra)."""
    try:
        require_av("")
    except MissingDependencyError:
        return False
    return True


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns from a video's headers."""

    duration: float
    """Seconds."""
    width: int
    height: int
    fps: float | None
    codec: str
    format: str
    """The container, a key of the supported formats: ``mp4``, ``mov``, ``webm``, ..."""
    mime_type: str


@dataclass(frozen=True)
class SampledFrame:
    """One frame taken from a video: its time (seconds from the start) and JPEG bytes."""

    time: float
    jpeg: bytes
    width: int
    height: int


def _describe_source(source: VideoSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source):,} bytes of video>"
    return describe_path(source)


def _sniff(source: VideoSource, description: str) -> str:
    """The container format from magic bytes; refuses what the service does not list."""
    if isinstance(source, bytes):
        return sniff_video(source[:HEAD_BYTES], len(source), description)
    size, head = read_head(path_from(source), description)
    return sniff_video(head, size, description)


class _Opened:
    """An open container and its first video stream, closed on exit."""

    def __init__(self, source: VideoSource, description: str) -> None:
        self.description = description
        av = require_av(f"Decoding {description}")
        self._av = av
        target: Any = io.BytesIO(source) if isinstance(source, bytes) else str(path_from(source))
        try:
            self.container: Any = av.open(target, metadata_errors="ignore")
        except FileNotFoundError as exc:
            raise MediaNotFoundError("file not found; check the path", part=description) from exc
        except PermissionError as exc:
            raise MediaNotFoundError("cannot be read: permission denied", part=description) from exc
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise CorruptMediaError(
                f"cannot be opened as a video ({_reason(exc)}); the file is corrupt or truncated",
                part=description,
            ) from exc
        try:
            streams = self.container.streams.video
            if not streams:
                raise UnsupportedMediaError("has no video stream", part=description)
            self.stream: Any = streams[0]
            codec = self.stream.codec_context
            if codec is None or not getattr(codec, "name", None):
                raise UnsupportedMediaError(
                    "uses a video codec this build of PyAV cannot decode", part=description
                )
            # Two decoder threads cost a couple of frames of memory and halve decode time.
            codec.thread_type = "AUTO"
        except BaseException:
            self.container.close()
            raise
        base = self.stream.start_time
        self.offset = float(base * self.stream.time_base) if base is not None else 0.0

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *_: object) -> None:
        self.container.close()

    @property
    def error_types(self) -> tuple[type[BaseException], ...]:
        return (self._av.error.FFmpegError, OSError, ValueError)

    def pixel_aspect(self) -> float:
        """Width of a pixel over its height: not 1 for anamorphic video (DVDs, some cameras)."""
        ratio = self.stream.sample_aspect_ratio or self.stream.codec_context.sample_aspect_ratio
        value = float(ratio) if ratio else 1.0
        # Unknown (0) or absurd values: show the pixels as they are.
        return value if 0.2 <= value <= 5.0 else 1.0

    def fps(self) -> float | None:
        rate = self.stream.average_rate or self.stream.guessed_rate
        return float(rate) if rate else None

    def duration(self) -> float:
        stream = self.stream
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif self.container.duration is not None:
            # AV_TIME_BASE: container durations are in microseconds.
            seconds = self.container.duration / 1_000_000
        else:
            seconds = self._duration_from_packets()
        if not seconds or seconds <= 0 or not math.isfinite(seconds):
            raise CorruptMediaError(
                "has no readable duration; the file is corrupt or truncated",
                part=self.description,
            )
        return seconds

    def _duration_from_packets(self) -> float:
        """Read packet timestamps (no decoding) when the headers carry no duration."""
        last = 0.0
        try:
            for packet in self.container.demux(self.stream):
                if packet.pts is None:
                    continue
                end = packet.pts + (packet.duration or 0)
                last = max(last, float(end * self.stream.time_base) - self.offset)
        except self.error_types as exc:
            raise CorruptMediaError(
                f"cannot be read to the end ({_reason(exc)})", part=self.description
            ) from exc
        self.container.seek(0)
        return last

    def frames(self, seek_to: float | None) -> Iterator[Any]:
        """Decoded frames from the start, or from the keyframe at or before ``seek_to``."""
        if seek_to is not None:
            pts = int((seek_to + self.offset) / self.stream.time_base)
            try:
                self.container.seek(pts, stream=self.stream, backward=True)
            except self.error_types as exc:
                raise CorruptMediaError(
                    f"cannot seek to {seek_to:.2f} s ({_reason(exc)})", part=self.description
                ) from exc
        return self._decode()

    def _decode(self) -> Iterator[Any]:
        decoded = self.container.decode(self.stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except self._av.error.DecoderNotFoundError as exc:
                raise UnsupportedMediaError(
                    f"uses a codec this FFmpeg build cannot decode ({_reason(exc)})",
                    part=self.description,
                ) from exc
            except self.error_types as exc:
                raise CorruptMediaError(
                    f"cannot be decoded ({_reason(exc)}); the file is corrupt or truncated",
                    part=self.description,
                ) from exc
            yield frame

    def time_of(self, frame: Any, position: int, fps: float | None) -> float:
        if frame.pts is not None:
            return float(frame.pts * self.stream.time_base) - self.offset
        return position / (fps or 25.0)


def _reason(exc: BaseException) -> str:
    # FFmpeg errors carry the file name too; the message already names the part.
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text[:120] if text else type(exc).__name__


def probe_video(source: VideoSource) -> VideoInfo:
    """Read a local video's headers: duration, size, frame rate, codec and container.

    Raises :class:`UnsupportedMediaError` for a container the service does not
    list or a file without a video stream, :class:`CorruptMediaError` for a
    file that cannot be opened (corrupt, or truncated before its index), and
    :class:`MissingDependencyError` without the ``video`` extra.

    >>> probe_video("talk.mp4").duration
    1804.2
    """
    description = _describe_source(source)
    fmt = _sniff(source, description)
    with _Opened(source, description) as opened:
        stream = opened.stream
        return VideoInfo(
            duration=opened.duration(),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=opened.fps(),
            codec=str(stream.codec_context.name),
            format=fmt,
            mime_type=VIDEO_MIME_TYPES[fmt],
        )


def check_range(source: VideoSource, *, start: float | None, end: float | None) -> None:
    """Refuse a video (or a time range of it) from which no frame can be sampled, before any
    request of the call: one frame of the range is decoded now, small. Sampling fails later
    exactly when this does (a file cut short before the range, a corrupt stream), so such a
    part is found here rather than after other requests of its call were sent."""
    sample_frames(source, start=start, end=end, count=1, max_side=32)


def sample_times(start: float, end: float, count: int) -> list[float]:
    """``count`` times spread evenly over ``[start, end]``: the middles of equal slices."""
    step = (end - start) / count
    return [start + (i + 0.5) * step for i in range(count)]


def sample_frames(
    source: VideoSource,
    *,
    start: float | None = None,
    end: float | None = None,
    count: int = DEFAULT_FRAMES,
    max_side: int = FRAME_MAX_SIDE,
    max_bytes: int = FRAME_MAX_BYTES,
) -> list[SampledFrame]:
    """Decode up to ``count`` frames spread over ``[start, end]`` (default: the whole video)
    and JPEG-encode each, long side at most ``max_side`` pixels and at most ``max_bytes``.

    Frames are decoded in order and only the sampled ones are converted; a gap
    of more than a few seconds to the next sample is crossed by seeking, so a
    sample of a long video does not decode all of it. A clip with fewer frames
    than ``count`` gives each of its frames once. Raises
    :class:`CorruptMediaError` when no frame in the range can be decoded.
    """
    if not 1 <= count <= MAX_IMAGES_PER_GROUP:
        raise InputError(f"frames must be between 1 and {MAX_IMAGES_PER_GROUP}, not {count}")
    description = _describe_source(source)
    with _Opened(source, description) as opened:
        duration = opened.duration()
        first = max(0.0, start or 0.0)
        last = duration if end is None else min(end, duration)
        if first >= last:
            raise InputError(
                f"the range {format_seconds(first)}-{format_seconds(end or duration)} s lies "
                f"outside the video, which is {format_seconds(duration)} s long",
                part=description,
            )
        fps = opened.fps()
        # Half a frame interval: a frame this close before a sample time counts as at it.
        tolerance = 0.5 / fps if fps else 0.02
        # Ranges are half-open like clips, [start, end): a frame shown from ``end`` on belongs
        # to the next clip, except at the end of the video.
        bound = last + tolerance if last >= duration else last - 1e-6
        targets = sample_times(first, last, count)

        aspect = opened.pixel_aspect()

        def convert(time: float, frame: Any) -> SampledFrame:
            return _encode_frame(time, frame, max_side, max_bytes, aspect)

        picked, overshot = _pick_frames(
            opened, targets, first, bound, tolerance, convert, seek=True
        )
    if not picked and overshot:
        # A seek that lands past the range (files without an index, broken timestamps): read
        # from the start instead. A stream that simply ends first (a truncated file) is not
        # read again.
        with _Opened(source, description) as opened:
            picked, _ = _pick_frames(opened, targets, first, bound, tolerance, convert, seek=False)
    if not picked:
        raise CorruptMediaError(
            f"no frame between {format_seconds(first)} s and {format_seconds(last)} s "
            "could be decoded; the file is corrupt or truncated",
            part=description,
        )
    return picked


def _pick_frames(
    opened: _Opened,
    targets: list[float],
    first: float,
    last: float,
    tolerance: float,
    convert: Callable[[float, Any], SampledFrame],
    *,
    seek: bool,
) -> tuple[list[SampledFrame], bool]:
    """The decoded frame nearest each target time, without repeats, within ``[first, last]``
    (``last`` already includes any tolerance), each converted as soon as it is chosen so
    that no more than one decoded frame is held at a time; and whether a frame past the
    range was met before any was picked (a seek that overshot)."""
    fps = opened.fps()
    picked: list[SampledFrame] = []
    frames: Iterator[Any] | None = None
    current: tuple[float, Any] | None = None
    position = 0
    exhausted = False
    for target in targets:
        behind = current[0] if current is not None else 0.0
        if frames is None or (seek and target - behind > _SEEK_GAP_SECONDS):
            start_at = target if seek and target > _SEEK_GAP_SECONDS else None
            if frames is None or start_at is not None:
                frames = opened.frames(start_at)
                current = None
                exhausted = False
        while not exhausted and (current is None or current[0] < target - tolerance):
            frame = next(frames, None)
            if frame is None:
                exhausted = True
                break
            current = (opened.time_of(frame, position, fps), frame)
            position += 1
        if current is None:
            break
        time, frame = current
        if time > last:
            return picked, not picked
        if time < first - tolerance:
            # Only possible once the stream has ended before the range.
            break
        if not picked or picked[-1].time != max(time, 0.0):
            picked.append(convert(max(time, 0.0), frame))
        if exhausted:
            break
    return picked, False


def _encode_frame(
    time: float, frame: Any, max_side: int, max_bytes: int, aspect: float = 1.0
) -> SampledFrame:
    from PIL import Image as PILImageModule

    # The shape a player shows: anamorphic pixels are stretched to square ones.
    width, height = max(1, round(int(frame.width) * aspect)), int(frame.height)
    scale = min(1.0, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = frame.to_image(width=size[0], height=size[1])
    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    if rotation:
        # Phones store portrait video as landscape plus a rotation the player applies.
        image = image.rotate(rotation, expand=True)
    for _ in range(6):
        for quality in _JPEG_QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            data = buffer.getvalue()
            if len(data) <= max_bytes:
                return SampledFrame(time, data, image.width, image.height)
        image = image.resize(
            (max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)),
            PILImageModule.Resampling.BILINEAR,
        )
    return SampledFrame(time, data, image.width, image.height)  # pragma: no cover
