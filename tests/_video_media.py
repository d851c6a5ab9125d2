"""Small videos for the video tests, written with PyAV when a test session first asks.

The standard sample is 25 s of 320x240 at 5 fps in 10 s segments: red, then a
black-and-white checkerboard (the distinctive moment), then blue.
"""

from __future__ import annotations

import io
from pathlib import Path

from tongyi_vision.samples import generate_sample_video

RED = (200, 40, 40)
BLUE = (40, 70, 200)
SEGMENT_COLOURS = (RED, (40, 160, 60), BLUE)
# Segment 1 (10-20 s) is the checkerboard.
PATTERNED_SEGMENT = 1


def sample(
    folder: Path, name: str = "sample.mp4", seconds: float = 25.0, **options: object
) -> Path:
    """The standard 25 s sample (or a variant) in ``folder``."""
    options.setdefault("colours", SEGMENT_COLOURS)
    options.setdefault("patterned", {PATTERNED_SEGMENT})
    return generate_sample_video(folder / name, seconds, **options)  # type: ignore[arg-type]


def truncated(source: Path, target: Path, fraction: float = 0.5) -> Path:
    """A copy of ``source`` cut after ``fraction`` of its bytes."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def garbage_after_header(source: Path, target: Path) -> Path:
    """The first 32 bytes of ``source`` (so the container is sniffed) and then noise."""
    target.write_bytes(source.read_bytes()[:32] + bytes(range(256)) * 64)
    return target


def audio_only(target: Path) -> Path:
    """A Matroska file holding one second of silence and no video stream."""
    import av

    with av.open(str(target), "w") as output:
        stream = output.add_stream("flac", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=8000)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 8000
        frame.pts = 0
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return target


def pixel(jpeg: bytes, xy: tuple[int, int] = (4, 4)) -> tuple[int, int, int]:
    """The colour of one pixel of a JPEG (a corner, away from the moving square)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        value = image.convert("RGB").getpixel(xy)
    assert isinstance(value, tuple)
    return (int(value[0]), int(value[1]), int(value[2]))


def near(colour: tuple[int, int, int], expected: tuple[int, int, int], slack: int = 24) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


def anamorphic(target: Path, aspect: tuple[int, int] = (2, 1)) -> Path:
    """Two seconds of 320x240 video whose pixels are twice as wide as they are tall."""
    from fractions import Fraction

    import av
    from PIL import Image

    with av.open(str(target), "w") as output:
        stream = output.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(*aspect)
        picture = Image.new("RGB", (320, 240), RED)
        for index in range(10):
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return target
