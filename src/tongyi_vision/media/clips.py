"""Cutting a local video into clips: one vector per clip, so a search finds the moment.

Only headers are read here; a clip's frames are decoded when it is embedded.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..wire.errors import InputError
from ..wire.limits import MAX_IMAGES_PER_GROUP
from .decoding import DEFAULT_FRAMES, probe_video, sample_frames
from .sources import file_uri, format_seconds, path_from
from .video import Video

DEFAULT_CLIP_SECONDS = 10.0
# A last clip shorter than this joins the one before it instead of standing alone.
MIN_TAIL_SECONDS = 1.0


def clip_bounds(
    duration: float, clip_seconds: float = DEFAULT_CLIP_SECONDS
) -> list[tuple[float, float]]:
    """Split ``[0, duration]`` into consecutive clips of ``clip_seconds``.

    The last clip ends at ``duration``; one shorter than a second joins the clip
    before it, so no clip holds only a frame or two.

    Examples:
        >>> clip_bounds(25.0, 10.0)
        [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    """
    if not clip_seconds > 0 or not math.isfinite(clip_seconds):
        raise InputError(f"clip_seconds must be a positive number of seconds, not {clip_seconds}")
    if duration <= 0:
        return []
    count = max(1, math.ceil(duration / clip_seconds - 1e-9))
    bounds = [
        (round(i * clip_seconds, 3), round(min((i + 1) * clip_seconds, duration), 3))
        for i in range(count)
    ]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_TAIL_SECONDS:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def clip_uri(path: str | os.PathLike[str], start: float, end: float) -> str:
    """The ``file://`` URI of a time range of a local video: ``file:///v.mp4#t=10,20``."""
    return f"{file_uri(path_from(path))}#t={format_seconds(start)},{format_seconds(end)}"


@dataclass(frozen=True)
class VideoClip:
    """A time range of a local video, embedded as one vector.

    ``duration`` is the length of the whole video; ``start_seconds`` and
    ``end_seconds`` bound the clip. :meth:`part` gives the :class:`Video` to
    embed; :attr:`uri` is the reference the LangChain loader puts in a
    document's text.
    """

    source: str
    index: int
    start_seconds: float
    end_seconds: float
    duration: float
    mime_type: str
    width: int = 0
    height: int = 0
    frames: int = DEFAULT_FRAMES

    @property
    def uri(self) -> str:
        """``file:///path/video.mp4#t=start,end`` (a W3C media fragment)."""
        return clip_uri(self.source, self.start_seconds, self.end_seconds)

    def part(self) -> Video:
        """The clip as a part of an embed call: frames sampled from its range."""
        return Video(
            self.source,
            strategy="frames",
            start=self.start_seconds,
            end=self.end_seconds,
            frames=self.frames,
        )

    def thumbnail(self, *, max_side: int = 512) -> bytes:
        """A JPEG of the frame at the middle of the clip (decodes one frame)."""
        frame = sample_frames(
            self.source,
            start=self.start_seconds,
            end=self.end_seconds,
            count=1,
            max_side=max_side,
        )
        return frame[0].jpeg

    def save_thumbnail(self, directory: str | os.PathLike[str], *, max_side: int = 512) -> Path:
        """Write :meth:`thumbnail` into ``directory`` as ``<video>.<tag>.<start>-<end>.jpg``.

        ``tag`` is a short hash of the video's full path, so two ``talk.mp4`` files in
        different folders do not overwrite each other's thumbnails.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(str(Path(self.source).resolve()).encode()).hexdigest()[:8]
        name = (
            f"{Path(self.source).stem}.{tag}.{format_seconds(self.start_seconds)}-"
            f"{format_seconds(self.end_seconds)}.jpg"
        )
        target = folder / name
        target.write_bytes(self.thumbnail(max_side=max_side))
        return target


def iter_clips(
    source: str | os.PathLike[str],
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    *,
    frames: int = DEFAULT_FRAMES,
) -> Iterator[VideoClip]:
    """Split a local video into clips of ``clip_seconds`` (the last one may be shorter).

    Only the headers are read here; each clip's frames are decoded when it is
    embedded, so iterating over the clips of a long video is cheap.

    Examples:
        >>> [(c.start_seconds, c.end_seconds) for c in iter_clips("25s.mp4", 10)]
        [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
        >>> client.embed([clip.part() for clip in iter_clips("talk.mp4")])
    """
    if not 1 <= frames <= MAX_IMAGES_PER_GROUP:
        raise InputError(f"frames must be between 1 and {MAX_IMAGES_PER_GROUP}, not {frames}")
    path = path_from(source)
    info = probe_video(path)
    absolute = str(path.resolve())
    for index, (start, end) in enumerate(clip_bounds(info.duration, clip_seconds)):
        yield VideoClip(
            source=absolute,
            index=index,
            start_seconds=start,
            end_seconds=end,
            duration=round(info.duration, 3),
            mime_type=info.mime_type,
            width=info.width,
            height=info.height,
            frames=frames,
        )


def clip_metadata(clip: VideoClip) -> dict[str, Any]:
    """The metadata the loaders and readers give a clip's document."""
    return {
        "source": clip.source,
        "clip_index": clip.index,
        "start_seconds": clip.start_seconds,
        "end_seconds": clip.end_seconds,
        "duration": clip.duration,
        "mime_type": clip.mime_type,
        "width": clip.width,
        "height": clip.height,
    }
