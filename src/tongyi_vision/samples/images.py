"""Sample pictures (simple shapes in distinct colours) and texts; Pillow only when drawing."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..wire.errors import MissingDependencyError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


RGB = tuple[int, int, int]
"""A colour as red, green and blue, each 0 to 255."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "stripes", "ring", "diamond")
"""The shapes :func:`draw_shape` knows."""


@dataclass(frozen=True)
class SampleImage:
    """One generated picture: a file name, what it shows, and how to draw it."""

    name: str
    caption: str
    shape: str
    colour: RGB
    background: RGB = (245, 245, 240)


SAMPLE_IMAGES: tuple[SampleImage, ...] = (
    SampleImage("red-circle.png", "a red circle on a white background", "circle", (220, 30, 40)),
    SampleImage("blue-square.png", "a blue square on a white background", "square", (30, 70, 200)),
    SampleImage(
        "green-triangle.png", "a green triangle on a white background", "triangle", (30, 160, 60)
    ),
    SampleImage(
        "yellow-stripes.jpg",
        "yellow stripes on a dark background",
        "stripes",
        (240, 200, 20),
        (30, 30, 40),
    ),
    SampleImage("purple-ring.bmp", "a purple ring on a white background", "ring", (130, 40, 170)),
    SampleImage(
        "orange-diamond.jpg",
        "an orange diamond on a blue background",
        "diamond",
        (250, 140, 20),
        (20, 60, 120),
    ),
)

SAMPLE_TEXTS: tuple[str, ...] = (
    "A red bicycle leans against a brick wall in the morning sun.",
    "Blue ocean waves roll onto a quiet sandy beach.",
    "A green forest trail winds between tall pine trees.",
    "The recipe needs two cups of flour, one egg and a pinch of salt.",
    "Embeddings map text and images into one vector space for search.",
    "A yellow taxi waits at a busy city crossing at night.",
)


def draw_shape(
    shape: str, colour: RGB, size: int = 256, background: RGB = (245, 245, 240)
) -> PILImage:
    """A ``size`` x ``size`` RGB Pillow image of one ``colour`` shape on ``background``.

    ``shape`` is one of :data:`SHAPES`; any other raises :class:`ValueError`.

        >>> draw_shape("triangle", (30, 160, 60), size=96).size
        (96, 96)
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown sample shape {shape!r}; expected one of {', '.join(SHAPES)}")
    try:
        from PIL import Image as PILImageModule
        from PIL import ImageDraw
    except ImportError as exc:
        raise MissingDependencyError("Pillow", "image", "drawing sample images") from exc
    image = PILImageModule.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    low, high = size // 8, size - size // 8
    middle = size // 2
    if shape == "circle":
        pen.ellipse((low, low, high, high), fill=colour)
    elif shape == "square":
        pen.rectangle((low, low, high, high), fill=colour)
    elif shape == "triangle":
        pen.polygon([(middle, low), (high, high), (low, high)], fill=colour)
    elif shape == "stripes":
        band = size // 8
        for top in range(0, size, 2 * band):
            pen.rectangle((0, top, size, top + band - 1), fill=colour)
    elif shape == "ring":
        pen.ellipse((low, low, high, high), outline=colour, width=size // 10)
    else:  # diamond
        pen.polygon([(middle, low), (high, middle), (middle, high), (low, middle)], fill=colour)
    return image


def draw_image(sample: SampleImage, size: int = 256) -> PILImage:
    """Draw ``sample`` as a ``size`` x ``size`` RGB Pillow image."""
    return draw_shape(sample.shape, sample.colour, size, sample.background)


def image_bytes(sample: SampleImage, size: int = 256) -> bytes:
    """``sample`` encoded in the format its file name says (PNG, JPEG or BMP)."""
    suffix = Path(sample.name).suffix.lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}[suffix]
    buffer = io.BytesIO()
    draw_image(sample, size).save(buffer, format=fmt)
    return buffer.getvalue()


def write_sample_images(folder: Path, size: int = 256) -> list[Path]:
    """Write every sample image into ``folder`` (created if needed); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in SAMPLE_IMAGES:
        path = folder / sample.name
        path.write_bytes(image_bytes(sample, size))
        paths.append(path)
    return paths


def write_sample_texts(folder: Path) -> list[Path]:
    """Write each sample text into its own ``.txt`` file in ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, text in enumerate(SAMPLE_TEXTS, start=1):
        path = folder / f"text-{number}.txt"
        path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def sample_image(name: str) -> SampleImage:
    """The sample image called ``name`` (a file name from :data:`SAMPLE_IMAGES`)."""
    for sample in SAMPLE_IMAGES:
        if sample.name == name:
            return sample
    raise KeyError(name)
