"""A fake gateway for the LangChain unit tests (behind ``httpx.MockTransport``) and small
image helpers; the fixtures that use them live in ``conftest.py``."""

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

KEY = "sk-langchain-unit-0123456789"
DIMENSION = 768
KINDS = {"text": 1.0, "image": 2.0, "video": 3.0, "multi_images": 4.0}


def fingerprint(content: dict[str, Any]) -> float:
    """A number naming one part's content; the fake puts it second in the part's vector."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return float(int.from_bytes(digest[:3], "big"))


def vector_for(content: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """What the fake answers for a part: its kind, its fingerprint, then zeros."""
    (kind,) = content
    return [KINDS[kind], fingerprint(content)] + [0.0] * (dimension - 2)


def contents_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of an openai-dialect or native request body, as native contents."""
    given = body["input"]
    if isinstance(given, str):
        return [{"text": given}]
    if isinstance(given, list):
        return [{"text": text} for text in given]
    return list(given["contents"])


@dataclass
class FakeGateway:
    """Answers embedding requests in either dialect and records what it was sent."""

    requests: list[httpx.Request] = field(default_factory=list)
    contents: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    # Async requests wait here until this many are in flight (or a second passes).
    gather: int = 0
    _gathered: asyncio.Event | None = None

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        contents = contents_of(body)
        self.contents.extend(contents)
        dimension = body.get("parameters", {}).get("dimension", DIMENSION)
        vectors = [vector_for(c, dimension) for c in contents]
        if request.url.path.endswith("/v1/embeddings"):
            data = [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ]
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 3 * len(data), "total_tokens": 3 * len(data)},
                },
            )
        embeddings = [{"index": i, "embedding": v, "type": "text"} for i, v in enumerate(vectors)]
        return httpx.Response(
            200,
            json={
                "output": {"embeddings": embeddings},
                "usage": {"input_tokens": 3 * len(embeddings)},
                "request_id": "req-1",
            },
        )

    async def answer_async(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gather:
                if self._gathered is None:
                    self._gathered = asyncio.Event()
                if self.in_flight >= self.gather:
                    self._gathered.set()
                # Bounded so that a sequential client fails the test instead of hanging it.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._gathered.wait(), timeout=1.0)
            await request.aread()
            return self.answer(request)
        finally:
            self.in_flight -= 1

    @property
    def kinds(self) -> list[str]:
        return [next(iter(c)) for c in self.contents]


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
