"""The fake gateway of the LangChain unit tests (the shared fake service of
``_service_fakes.py`` with this suite's vectors) and small image helpers; the fixtures that
use them live in ``conftest.py``."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from tests._service_fakes import DIMENSION, FakeEmbeddingService

KEY = "sk-langchain-unit-0123456789"
KINDS = {"text": 1.0, "image": 2.0, "video": 3.0, "multi_images": 4.0}


def fingerprint(content: dict[str, Any]) -> float:
    """A number naming one part's content; the fake puts it second in the part's vector."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:3], "big") / 1000.0  # within what an embedding may hold


def vector_for(content: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """What the fake answers for a part: its kind, its fingerprint, then zeros."""
    (kind,) = content
    return [KINDS[kind], fingerprint(content)] + [0.0] * (dimension - 2)


@dataclass
class FakeGateway(FakeEmbeddingService):
    """The shared fake service, answering :func:`vector_for` and 3 tokens a part."""

    tokens_per_part: int = 3
    gate_seconds: float = 1.0  # bounded so that a sequential client fails instead of hanging

    def vector(self, content: dict[str, Any], dimension: int) -> list[float]:
        return vector_for(content, dimension)


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def write_image(
    path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (16, 12), fmt: str = "PNG"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", size, colour).save(path, fmt)
    return path
