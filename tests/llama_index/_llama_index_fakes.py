"""The fake embeddings service of the LlamaIndex unit tests (the shared fake service of
``_service_fakes.py`` with this suite's vectors), and small image files drawn with Pillow.
The fixtures that use them are in ``conftest.py``."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from tests._service_fakes import DIMENSION, FakeEmbeddingService

KEY = "sk-llamaindex-unit-7f3a9c2e51"


def part_vector(content: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """The fake's vector for one part: a number derived from the part's content, then zeros."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return [int.from_bytes(digest[:3], "big") / 1000.0, 1.0] + [0.0] * (dimension - 2)


@dataclass
class FakeService(FakeEmbeddingService):
    """The shared fake service, answering :func:`part_vector` and 4 tokens a part."""

    tokens_per_part: int = 4

    def vector(self, content: dict[str, Any], dimension: int) -> list[float]:
        return part_vector(content, dimension)


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> Path:
    """Write a one-colour image in the format the suffix names (PNG, JPEG or BMP)."""
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", size, colour).save(path, format=fmt)
    return path
