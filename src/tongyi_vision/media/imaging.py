"""Pillow (the ``image`` extra): reading image headers behind the decompression-bomb guard,
and re-encoding images to fit the service's limits.

:func:`open_image` is the one way the project opens an image file or bytes, so
every reader of a picture refuses the same bombs and corrupt headers.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import TYPE_CHECKING, Any

from ..wire.errors import CorruptMediaError, MissingDependencyError, UnsupportedMediaError
from ..wire.formats import structure_problem
from ..wire.limits import MAX_DECODE_PIXELS

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# Bumped whenever the re-encoding below changes what is sent, so that the embedding cache
# does not serve a vector of an image encoded by older rules.
FIT_VERSION = 1
_JPEG_QUALITIES = (95, 90, 85, 80)


def require_pillow(purpose: str) -> Any:
    """Import Pillow or raise an error naming the ``image`` extra."""
    try:
        from PIL import Image as PILImageModule
    except ImportError as exc:  # pragma: no cover - exercised in an environment without Pillow
        raise MissingDependencyError("Pillow", "image", purpose) from exc
    return PILImageModule


def pillow_available() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def open_image(
    data: bytes | io.BufferedIOBase | str | os.PathLike[str], *, description: str
) -> PILImage:
    """Open an image lazily (header only), refusing decompression bombs and undecodable data."""
    pil = require_pillow("Reading images")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's warning.
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            source = io.BytesIO(data) if isinstance(data, bytes) else data
            image: PILImage = pil.open(source)
    except pil.DecompressionBombError as exc:
        raise UnsupportedMediaError(
            f"refused as a decompression bomb ({exc}); pass a smaller image", part=description
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptMediaError(
            f"cannot be decoded as an image ({exc}); check the file", part=description
        ) from exc
    try:
        check_pixels(image.width, image.height, description)
    except UnsupportedMediaError:
        image.close()
        raise
    return image


def check_pixels(width: int, height: int, description: str) -> None:
    """Refuse an image of more pixels than :data:`MAX_DECODE_PIXELS`."""
    if width * height > MAX_DECODE_PIXELS:
        raise UnsupportedMediaError(
            f"{width}x{height} pixels is over the {MAX_DECODE_PIXELS:,}-pixel safety limit "
            "(a decompression bomb or a scan far larger than the model can use); "
            "downscale it first",
            part=description,
        )


def image_size(
    source: bytes | str | os.PathLike[str], *, description: str, verify: bool = False
) -> tuple[int, int]:
    """Width and height from the header, behind the bomb guard of :func:`open_image`.

    ``verify`` also checks that the whole image decodes, cheaply (a PNG's chunks
    are read to the end, a JPEG is decoded at an eighth of its size, other
    formats are decoded), so a file cut short or corrupt is found now rather
    than when its request is built, or by the service.
    """
    with open_image(source, description=description) as image:
        width, height = int(image.width), int(image.height)
        if verify:
            try:
                if image.format == "PNG":
                    image.verify()
                else:
                    if image.format == "JPEG":
                        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # e.g. "palette images with transparency"
                        image.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise CorruptMediaError(
                    f"is {image.format or 'an image'} data cut short or corrupt ({exc}); "
                    "check the file",
                    part=description,
                ) from exc
        return width, height


def check_structure(source: bytes | os.PathLike[str], fmt: str, description: str) -> None:
    """Without Pillow: refuse a JPEG, PNG or BMP whose bytes end too early."""
    if isinstance(source, bytes):
        head, tail, size = source[:64], source[-4096:], len(source)
    else:
        with open(source, "rb") as handle:
            head = handle.read(64)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4096))
            tail = handle.read()
    problem = structure_problem(fmt, head, tail, size)
    if problem is not None:
        raise CorruptMediaError(
            f"is {fmt.upper()} that {problem}; check the file", part=description
        )


def fit_image(source: bytes | str, *, max_bytes: int, description: str) -> tuple[bytes, str]:
    """Re-encode an image as JPEG or PNG of at most ``max_bytes``, keeping its aspect.

    Lossless PNG is kept for images with transparency or few colours when it
    fits; otherwise the best JPEG quality that fits at full size is used, and
    only when none does is the image scaled down, as little as needed.
    Returns ``(data, format)``.
    """
    pil = require_pillow(f"Converting {description}")
    image = open_image(source, description=description)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            from PIL import ImageOps

            image.load()
            image = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError) as exc:
        raise CorruptMediaError(
            f"cannot be decoded ({exc}); check the file", part=description
        ) from exc

    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated GIF/WEBP: the first frame stands for the image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha or image.mode in ("P", "1", "L"):
        png = _encode(image.convert("RGBA" if has_alpha else image.mode), "PNG")
        if len(png) <= max_bytes:
            return png, "png"
    rgb = _flatten(image) if has_alpha else image.convert("RGB")

    scale = 1.0
    for _ in range(12):
        candidate = rgb if scale == 1.0 else _resize(rgb, scale)
        for quality in _JPEG_QUALITIES:
            data = _encode(candidate, "JPEG", quality=quality)
            if len(data) <= max_bytes:
                return data, "jpeg"
        # JPEG size grows roughly with pixel count: aim just under the limit.
        scale *= min(0.9, math.sqrt(max_bytes / len(data)) * 0.95)
    raise UnsupportedMediaError(  # pragma: no cover - 12 halvings always fit
        f"could not be re-encoded under {max_bytes:,} bytes", part=description
    )


def _encode(image: PILImage, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        options.setdefault("optimize", True)
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _flatten(image: PILImage) -> PILImage:
    from PIL import Image as PILImageModule

    rgba = image.convert("RGBA")
    background = PILImageModule.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _resize(image: PILImage, scale: float) -> PILImage:
    from PIL import Image as PILImageModule

    width = max(1, round(image.width * scale))
    height = max(1, round(image.height * scale))
    return image.resize((width, height), PILImageModule.Resampling.LANCZOS)


def encode_pil(image: PILImage) -> tuple[bytes, str]:
    """Encode an in-memory PIL image losslessly as PNG (fitted later if too large)."""
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return _encode(image, "PNG"), "png"
