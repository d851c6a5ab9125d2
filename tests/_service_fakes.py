"""A fake embeddings service for the adapter unit tests (LangChain and LlamaIndex), behind
``httpx.MockTransport``: it answers both dialects, records what it was sent and counts
requests in flight. Each suite subclasses it with its own vectors and token counts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

DIMENSION = 768


def contents_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a request body of either dialect, as native contents."""
    given = body["input"]
    if isinstance(given, str):
        return [{"text": given}]
    if isinstance(given, list):
        return [{"text": text} for text in given]
    return list(given["contents"])


@dataclass
class FakeEmbeddingService:
    """Answers both dialects, records every request, and counts requests in flight.

    Async requests wait at a gate until ``gather`` of them are in flight at once,
    or ``gate_seconds`` pass: a method that allows ``gather`` concurrent requests
    is seen doing so, and one that allows fewer is held only briefly. A ``status``
    other than 200 answers every request with that error.
    """

    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    in_flight: int = 0
    max_in_flight: int = 0
    gather: int = 0
    gate_seconds: float = 0.25
    tokens_per_part: int = 1
    _gate: asyncio.Event | None = None

    def vector(self, content: dict[str, Any], dimension: int) -> list[float]:
        """The vector answered for one part; each suite says what it holds."""
        raise NotImplementedError

    @property
    def contents(self) -> list[dict[str, Any]]:
        return [c for body in self.bodies for c in contents_of(body)]

    @property
    def kinds(self) -> list[str]:
        return [next(iter(c)) for c in self.contents]

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
        vectors = [self.vector(c, dimension) for c in contents_of(body)]
        tokens = self.tokens_per_part * len(vectors)
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
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
        embeddings = [{"index": i, "embedding": v, "type": "text"} for i, v in enumerate(vectors)]
        return httpx.Response(
            200,
            json={
                "output": {"embeddings": embeddings},
                "usage": {"input_tokens": tokens, "total_tokens": tokens},
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
            await request.aread()
            return self.answer(request)
        finally:
            self.in_flight -= 1


class MockHttpClients:
    """Pairs of sync and async httpx clients whose requests go to ``service``; ``close()``
    closes every pair it made."""

    def __init__(self, service: FakeEmbeddingService) -> None:
        self._service = service
        self._made: list[tuple[httpx.Client, httpx.AsyncClient]] = []

    def pair(self) -> tuple[httpx.Client, httpx.AsyncClient]:
        http = httpx.Client(transport=httpx.MockTransport(self._service.answer))
        ahttp = httpx.AsyncClient(transport=httpx.MockTransport(self._service.answer_async))
        self._made.append((http, ahttp))
        return http, ahttp

    def close(self) -> None:
        for http, ahttp in self._made:
            http.close()
            # MockTransport holds no connections, so closing on a fresh loop is safe.
            asyncio.run(ahttp.aclose())
