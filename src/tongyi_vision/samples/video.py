"""Synthetic sample videos for tests, demos and benchmarks, written with PyAV.

A sample video is a run of segments, each a solid colour with a small square
moving across it, so consecutive frames differ a little and segments differ a
lot. Segments listed in ``patterned`` show a checkerboard instead: a moment a
search should find. Needs the ``video`` extra (PyAV and Pillow).
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..media.decoding import require_av
from .images import RGB

DEFAULT_COLOURS: tuple[RGB, ...] = (
    (200, 40, 40),
    (40, 160, 60),
    (40, 70, 200),
    (230, 200, 40),
    (150, 60, 180),
    (40, 190, 200),
)


def preferred_codec() -> str:
    """``libx264`` (H.264, what most real MP4s hold) when this PyAV can encode it, else
    ``mpeg4``, which every FFmpeg build has."""
    av = require_av("Writing a sample video")
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # any failure means "not available in this build"
            continue
        return name
    raise RuntimeError("this PyAV build can encode neither H.264 nor MPEG-4 video")


def generate_sample_video(
    path: str | os.PathLike[str],
    seconds: float = 30.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 5,
    colours: Sequence[RGB] = DEFAULT_COLOURS,
    *,
    segment_seconds: float = 10.0,
    patterned: Collection[int] = (),
    codec: str | None = None,
    container: str | None = None,
    preset: str = "veryfast",
    motion_steps: int | None = None,
) -> Path:
    """Write a synthetic video and return its path.

    Segment ``i`` (``[i * segment_seconds, (i + 1) * segment_seconds)``) is
    ``colours[i % len(colours)]``; segments whose index is in ``patterned``
    show a black-and-white checkerboard. ``codec`` defaults to
    :func:`preferred_codec`; the container follows the file suffix (``.mp4``,
    ``.mkv``, ``.webm``, ``.avi``, ``.mov``) unless ``container`` names it.
    ``preset`` is the H.264 speed preset; ``motion_steps`` limits the square to
    that many positions per segment, so frames repeat and long videos (for
    benchmarks) are drawn once per position rather than once per frame.

    >>> generate_sample_video("demo.mp4", seconds=25, patterned={1})
    PosixPath('demo.mp4')
    """
    av = require_av("Writing a sample video")
    from PIL import Image as PILImageModule
    from PIL import ImageDraw

    if seconds <= 0 or fps <= 0 or segment_seconds <= 0:
        raise ValueError("seconds, fps and segment_seconds must be positive")
    if not colours:
        raise ValueError("colours must name at least one colour")
    width, height = size
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (4:2:0 video)")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    codec_name = codec or preferred_codec()
    total = max(1, round(seconds * fps))
    side = max(4, min(width, height) // 6)
    backgrounds: dict[int, Any] = {}

    def background(segment: int) -> Any:
        if segment not in backgrounds:
            if segment in patterned:
                image = _checkerboard(width, height, max(8, min(width, height) // 8))
            else:
                image = PILImageModule.new("RGB", size, colours[segment % len(colours)])
            backgrounds[segment] = image
        return backgrounds[segment]

    with av.open(str(target), "w", format=container) as output:
        stream: Any = output.add_stream(codec_name, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec_name == "libx264":
            # Fast and deterministic: one thread, no lookahead randomness.
            stream.options = {"preset": preset, "threads": "1"}
        else:
            stream.codec_context.thread_count = 1
        drawn: dict[tuple[int, int], Any] = {}
        for index in range(total):
            segment = math.floor(index / fps / segment_seconds)
            # The square sweeps the width once per segment.
            phase = (index / fps % segment_seconds) / segment_seconds
            if motion_steps:
                phase = math.floor(phase * motion_steps) / motion_steps
            left = round(phase * (width - side))
            frame = drawn.get((segment, left))
            if frame is None:
                image = background(segment).copy()
                top = (height - side) // 2
                ImageDraw.Draw(image).rectangle(
                    (left, top, left + side - 1, top + side - 1), fill=(255, 255, 255)
                )
                frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
                if motion_steps:
                    # Keep only the current segment's frames: memory stays flat.
                    drawn = {k: v for k, v in drawn.items() if k[0] == segment}
                    drawn[(segment, left)] = frame
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return target


def _checkerboard(width: int, height: int, cell: int) -> Any:
    from PIL import Image as PILImageModule
    from PIL import ImageDraw

    image = PILImageModule.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for row in range(0, height, cell):
        for column in range(0, width, cell):
            if (row // cell + column // cell) % 2 == 0:
                draw.rectangle(
                    (column, row, column + cell - 1, row + cell - 1), fill=(255, 255, 255)
                )
    return image
