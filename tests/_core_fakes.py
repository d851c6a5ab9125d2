"""Fakes and builders shared by the core unit tests (imported by name; the fixtures that
use them live in ``conftest.py``)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tongyi_vision import AsyncClient, Client
from tongyi_vision.engine.permits import PermitState


class FakeClock:
    """A clock for a limiter or pacer (``_clock``) that moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# The fixtures of conftest.py: make_client(handler, **options) and its async twin.
MakeClient = Callable[..., Client]
MakeAsyncClient = Callable[..., AsyncClient]

KEY = "sk-test-0123456789abcdef"
CONFIG_VARS = (
    "EMPIRIOLABS_API_KEY",
    "DASHSCOPE_API_KEY",
    "TONGYI_VISION_BASE_URL",
    "TONGYI_VISION_MODEL",
    "TONGYI_VISION_DIALECT",
)


def content_id(content: Any) -> float:
    """A number that identifies a part's content; the fake puts it first in the part's vector."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:3], "big") / 1000.0


def vector_for(content: Any, dimension: int = 768) -> list[float]:
    """The vector the fake service answers for one part."""
    return [content_id(content)] + [0.5] * (dimension - 1)


def text_vector(text: str, dimension: int = 768) -> list[float]:
    return vector_for({"text": text}, dimension)


def contents_of(body: dict[str, Any]) -> list[Any]:
    """The parts of a request body of either dialect, as native contents."""
    given = body["input"]
    if isinstance(given, list):
        return [{"text": t} for t in given]
    return list(given["contents"])


Reply = Callable[["Seen"], httpx.Response | None]


@dataclass
class Seen:
    """One request the fake received."""

    number: int
    request: httpx.Request
    body: dict[str, Any]
    contents: list[Any]
    status: int = 0  # the status the fake answered with


@dataclass
class FakeService:
    """The embeddings endpoint, answering in the dialect it is built for.

    ``script`` holds replies for requests by arrival number (1-based); a reply
    returning ``None`` falls through to a normal answer. ``on_request`` runs in the
    handler before answering (used to hold requests in flight).
    """

    dialect: str = "openai"
    dimension: int = 768
    script: dict[int, Reply] = field(default_factory=dict)
    fail: Callable[[Seen], httpx.Response | None] | None = None
    on_request: Callable[[Seen], None] | None = None
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: httpx.Request) -> Seen:
        body = json.loads(request.content)
        with self.lock:
            seen = Seen(len(self.seen) + 1, request, body, contents_of(body))
            self.seen.append(seen)
        return seen

    def answer(self, seen: Seen) -> httpx.Response:
        if seen.number in self.script:
            scripted = self.script[seen.number](seen)
            if scripted is not None:
                return scripted
        if self.fail is not None:
            failed = self.fail(seen)
            if failed is not None:
                return failed
        return self.success(seen.contents)

    def success(self, contents: list[Any]) -> httpx.Response:
        n = len(contents)
        if self.dialect == "openai":
            data = [
                {"object": "embedding", "index": i, "embedding": vector_for(c, self.dimension)}
                for i, c in enumerate(contents)
            ]
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": data,
                    "model": "m",
                    "usage": {"prompt_tokens": 10 * n, "total_tokens": 10 * n},
                },
            )
        embeddings = [
            {"index": i, "embedding": vector_for(c, self.dimension), "type": "text"}
            for i, c in enumerate(contents)
        ]
        return httpx.Response(
            200,
            json={
                "output": {"embeddings": embeddings},
                "usage": {"input_tokens": 10 * n, "total_tokens": 10 * n},
                "request_id": f"req-{n}",
            },
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        seen = self.record(request)
        if self.on_request is not None:
            self.on_request(seen)
        response = self.answer(seen)
        seen.status = response.status_code
        return response

    def succeeded(self) -> list[Any]:
        """Every part of every request answered with success, in arrival order."""
        return [c for s in self.seen if s.status == 200 for c in s.contents]

    @property
    def parts_sent(self) -> list[Any]:
        return [c for s in self.seen for c in s.contents]


@dataclass
class Sleeps:
    """Records the delays a client asked for instead of sleeping."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def delays(client: Client | AsyncClient) -> list[float]:
    """The waits a client of the fixtures asked for, in order."""
    sleeps = client._sleep
    if not isinstance(sleeps, Sleeps):
        raise TypeError("the client was not made by make_client or make_async_client")
    return sleeps.delays


@dataclass
class AsyncSleeps(Sleeps):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.delays.append(seconds)


def png_bytes(
    width: int = 8, height: int = 6, color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def image_bytes(fmt: str, width: int = 16, height: int = 12) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    mode = "P" if fmt == "GIF" else "RGB"
    PILImage.new(mode, (width, height)).save(buffer, format=fmt)
    return buffer.getvalue()


def error_response(
    status: int,
    *,
    dialect: str = "native",
    code: str | None = None,
    message: str = "went wrong",
    request_id: str | None = "req-err",
    json_type: bool = True,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    if dialect == "openai":
        payload: dict[str, Any] = {
            "error": {"message": message, "type": "error", "code": code, "param": None}
        }
    else:
        payload = {"code": code, "message": message, "request_id": request_id}
    content = json.dumps(payload).encode()
    all_headers = {"content-type": "application/json" if json_type else "text/plain"}
    all_headers.update(headers or {})
    return httpx.Response(status, content=content, headers=all_headers)


def permits_of(client: Client | AsyncClient) -> PermitState:
    """The permit state of a client: the sync client's own, or that of the one event loop an
    async client has been used on."""
    if isinstance(client, Client):
        return client._permits.state
    (pool,) = client._pools.values()
    return pool.permits.state
