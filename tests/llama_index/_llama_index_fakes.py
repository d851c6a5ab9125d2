"""A fake embeddings service for the LlamaIndex unit tests (behind ``httpx.MockTransport``),
and small image files drawn with Pillow. The fixtures that use them are in ``conftest.py``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage

KEY = "sk-llamaindex-unit-7f3a9c2e51"
DIMENSION = 768


def part_vector(content: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """The fake's vector for one part: a number derived from the part's content, then zeros."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return [float(int.from_bytes(digest[:3], "big")), 1.0] + [0.0] * (dimension - 2)


def contents_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a request body of either dialect, as native contents."""
    given = body["input"]
    if isinstance(given, str):
        return [{"text": given}]
    if isinstance(given, list):
        return [{"text": text} for text in given]
    return list(given["contents"])


@dataclass
class FakeService:
    """Answers both dialects, records every request, and counts requests in flight.

    Async requests wait at a gate until ``gather`` of them are in flight at once,
    or ``gate_seconds`` pass: a method that allows ``gather`` concurrent requests
    is seen doing so, and one that allows fewer is held only briefly.
    """

    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    in_flight: int = 0
    max_in_flight: int = 0
    gather: int = 0
    gate_seconds: float = 0.25
    _gate: asyncio.Event | None = None

    @property
    def contents(self) -> list[dict[str, Any]]:
        return [c for body in self.bodies for c in contents_of(body)]

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(
                self.status,
                json={"error": {"message": "refused by the fake", "type": "invalid_request"}},
            )
        dimension = body.get("parameters", {}).get("dimension", DIMENSION)
        vectors = [part_vector(c, dimension) for c in contents_of(body)]
        if request.url.path.endswith("/v1/embeddings"):
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": [
                        {"object": "embedding", "index": i, "embedding": v}
                        for i, v in enumerate(vectors)
                    ],
                    "model": body["model"],
                    "usage": {"prompt_tokens": 4 * len(vectors), "total_tokens": 4 * len(vectors)},
                },
            )
        return httpx.Response(
            200,
            json={
                "output": {
                    "embeddings": [
                        {"index": i, "embedding": v, "type": "text"} for i, v in enumerate(vectors)
                    ]
                },
                "usage": {"input_tokens": 4 * len(vectors), "total_tokens": 4 * len(vectors)},
                "request_id": f"req-{len(self.requests)}",
            },
        )

    async def answer_async(self, request: httpx.Request) -> httpx.Response:
        if self._gate is None:
            self._gate = asyncio.Event()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.in_flight >= self.gather:
                self._gate.set()
            # Fewer than `gather` requests running together is answered anyway, later.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._gate.wait(), timeout=self.gate_seconds)
            return self.answer(request)
        finally:
            self.in_flight -= 1


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
