"""The emulator's ASGI application (starlette): both dialects, health, stats."""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import math
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pydantic_core
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..wire.models import (
    NATIVE_PATH,
    OPENAI_PATH,
    InputTokensDetails,
    NativeRequest,
    NativeUsage,
    OpenAIRequest,
    OpenAIUsage,
)
from ._config import EmulatorConfig
from ._errors import ApiFault, bad_request, error_body
from ._faults import FAULT_HEADER, Fault, LoadState, Throttled
from ._media import Embedded, check_fusion, check_raw_counts, embed_contents
from ._models import gateway_options, native_options, served_model

# Bodies above this size are parsed and embedded on a worker thread, off the event loop.
_INLINE_BODY_BYTES = 32 * 1024
# What the service says to a wrong key, and to a key of the other region: the same words.
INVALID_KEY_MESSAGE = "Invalid API-key provided."
_MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>"

Peer = tuple[str, int]


class ConnectionDropped(RuntimeError):
    """Raised for a ``drop`` fault when the app runs without a socket (an in-memory transport)."""


class Connections:
    """Open sockets by client address, filled in by the server's protocol, so the app can
    close a connection without answering: something ASGI itself cannot express."""

    def __init__(self) -> None:
        self._transports: dict[Peer, asyncio.Transport] = {}

    @staticmethod
    def key(address: Any) -> Peer | None:
        if not address or len(address) < 2:
            return None
        return str(address[0]), int(address[1])

    def add(self, address: Any, transport: asyncio.Transport) -> None:
        key = self.key(address)
        if key is not None:
            self._transports[key] = transport

    def remove(self, address: Any) -> None:
        key = self.key(address)
        if key is not None:
            self._transports.pop(key, None)

    def get(self, address: Any) -> asyncio.Transport | None:
        key = self.key(address)
        return None if key is None else self._transports.get(key)


class _Hangup(Response):
    """Close the connection instead of answering; ``partial`` bytes of a promised body first."""

    def __init__(self, connections: Connections, partial: tuple[bytes, int] | None = None) -> None:
        super().__init__()
        self._connections = connections
        self._partial = partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = scope.get("client")
        transport = self._connections.get(address)
        if transport is None:
            raise ConnectionDropped("the emulator dropped this connection (fault injection)")
        if self._partial is not None:
            chunk, promised = self._partial
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(promised).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            transport.close()  # flushes what was written, then closes
        else:
            transport.abort()
        # Let the server notice the closed connection before returning, so it does not try to
        # answer on our behalf.
        for _ in range(100):
            if self._connections.get(address) is not transport:
                break
            await asyncio.sleep(0.001)


@dataclass(frozen=True)
class _Answer:
    payload: dict[str, Any]
    parts: int
    tokens: int
    body: bytes = b""


class Emulator:
    """The request handlers and their shared state; one per application."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.load = LoadState(config)
        self.connections = Connections()

    # --- routes ---

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(self, request: Request) -> Response:
        # With a key configured the counters are the key holder's, like the embeddings; the
        # answer belongs to neither dialect, so a refusal comes in the native error shape.
        if self.config.api_key is not None:
            try:
                self._authenticate(request, "stats")
            except ApiFault as problem:
                return self._error("dashscope", problem, str(uuid.uuid4()))
        return JSONResponse({**self.load.stats.as_dict(), "in_flight": self.load.in_flight})

    async def openai(self, request: Request) -> Response:
        return await self._handle(request, "openai")

    async def native(self, request: Request) -> Response:
        return await self._handle(request, "dashscope")

    # --- one embeddings request ---

    async def _handle(self, request: Request, dialect: str) -> Response:
        stats = self.load.stats
        stats.requests += 1
        request_id = str(uuid.uuid4())
        try:
            self._authenticate(request, dialect)
            fault = self._fault(request)
            throttled = self.load.admission()
            if throttled is not None:
                raise _throttle(throttled)
            try:
                response = await self._admitted(request, dialect, fault, request_id)
            finally:
                self.load.release()
        except ApiFault as problem:
            if problem.status == 429:
                stats.throttled += 1
            else:
                stats.failed += 1
            return self._error(dialect, problem, request_id)
        return response

    async def _admitted(
        self, request: Request, dialect: str, fault: Fault | None, request_id: str
    ) -> Response:
        seconds = fault.latency if fault and fault.latency is not None else self.load.latency()
        if seconds > 0:
            await asyncio.sleep(seconds)
        if fault and fault.drop:
            self.load.stats.dropped += 1
            return _Hangup(self.connections)
        if fault and fault.status is not None:
            retry_after = fault.retry_after
            if fault.status == 429 and retry_after is None:
                retry_after = self.config.retry_after
            raise ApiFault(
                fault.status,
                f"injected fault: HTTP {fault.status}",
                code=fault.code,
                retry_after=retry_after,
            )
        body = await self._body(request)
        work: Callable[[], _Answer] = lambda: self._answer(body, dialect, request_id)  # noqa: E731
        # Decoding images and reading mapped files would stall every other request: off the loop.
        offload = len(body) > _INLINE_BODY_BYTES or (self.config.media_roots and b"http" in body)
        answer = await run_in_threadpool(work) if offload else work()
        # Tokens are known once the answer is: a request over the token windows is refused now.
        throttled = self.load.take_tokens(answer.tokens)
        if throttled is not None:
            raise _throttle(throttled)
        headers = {"x-request-id": request_id}
        if fault and fault.breaks_answer:
            self.load.stats.damaged += 1
            return self._damaged(fault, answer.payload, headers)
        stats = self.load.stats
        stats.succeeded += 1
        stats.billed_parts += answer.parts
        stats.billed_tokens += answer.tokens
        return Response(answer.body, media_type="application/json", headers=headers)

    def _authenticate(self, request: Request, route: str) -> None:
        """Check the Bearer key. On the native path (``route`` ``dashscope``) a key bound to
        the region the emulator does not play is refused as the service refuses it: the same
        401 as any wrong key. Keys bound to a region are accepted beside ``api_key``."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiFault(401, "no API key: send the header Authorization: Bearer <key>")
        config = self.config
        region = config.region_of(key)
        if region is not None:
            if route == "dashscope" and config.region not in (None, region):
                raise ApiFault(401, INVALID_KEY_MESSAGE)
            return
        expected = config.api_key
        if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            raise ApiFault(401, INVALID_KEY_MESSAGE)

    def _fault(self, request: Request) -> Fault | None:
        header = request.headers.get(FAULT_HEADER)
        # One draw per request either way, so a header does not shift later random faults.
        drawn = self.load.random_fault()
        if header is None:
            return drawn
        try:
            return self.load.header_fault(header)
        except ValueError as exc:
            raise bad_request(f"bad {FAULT_HEADER} header: {exc}") from exc

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiFault(413, f"request body over the {limit:,}-byte limit")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiFault(413, f"request body over the {limit:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    # --- building the answer (pure; may run on a worker thread) ---

    def _answer(self, body: bytes, dialect: str, request_id: str) -> _Answer:
        if dialect == "openai":
            answer = self._openai_answer(body)
        else:
            answer = self._native_answer(body, request_id)
        # Serialised here, so a large answer is encoded on the worker thread too.
        return replace(answer, body=_dumps(answer.payload))

    def _openai_answer(self, body: bytes) -> _Answer:
        parsed = _parse(body)
        raw = parsed.get("input")
        if isinstance(raw, dict):
            check_raw_counts(raw.get("contents"), "input.contents")
        else:
            check_raw_counts(raw, "input")
        try:
            request = OpenAIRequest.model_validate(parsed)
            contents = request.contents()
        except (ValidationError, ValueError) as exc:
            raise bad_request(f"invalid request body: {_describe(exc)}") from exc
        spec = served_model(request.model)
        if request.dimensions is not None and request.dimensions != spec.default_dimension:
            raise bad_request(
                f"{spec.name} makes {spec.default_dimension}-dimensional vectors here; "
                f"dimensions={request.dimensions} is not available",
                param="dimensions",
            )
        where = "input.contents" if not isinstance(request.input, (str, list)) else "input"
        check_fusion(contents, where, spec)
        options = gateway_options(spec, self.config.media_roots)
        items = embed_contents(contents, options, where)
        tokens = sum(_tokens(item) for item in items)
        encode: Callable[[list[float]], Any] = (
            _base64_floats if request.encoding_format == "base64" else _identity
        )
        data = [
            {"object": "embedding", "index": index, "embedding": encode(item.vector)}
            for index, item in enumerate(items)
        ]
        usage = OpenAIUsage(prompt_tokens=tokens, total_tokens=tokens).model_dump()
        payload = {"object": "list", "data": data, "model": request.model, "usage": usage}
        return _Answer(payload, len(items), tokens)

    def _native_answer(self, body: bytes, request_id: str) -> _Answer:
        parsed = _parse(body)
        raw = parsed.get("input")
        check_raw_counts(raw.get("contents") if isinstance(raw, dict) else None, "input.contents")
        # The parameters are checked as sent (see native_options), not as a model coerces them.
        parameters = parsed.pop("parameters", None)
        try:
            request = NativeRequest.model_validate(parsed)
        except ValidationError as exc:
            raise bad_request(f"invalid request body: {_describe(exc)}") from exc
        spec = served_model(request.model)
        options = native_options(spec, parameters, self.config.media_roots)
        contents = request.input.contents
        check_fusion(contents, "input.contents", spec)
        items = embed_contents(contents, options, "input.contents")
        embeddings = [
            {"index": index, "embedding": item.vector, "type": item.kind}
            for index, item in enumerate(items)
        ]
        usage = self._native_usage(items)
        payload = {"output": {"embeddings": embeddings}, "usage": usage, "request_id": request_id}
        return _Answer(payload, len(items), sum(_tokens(item) for item in items))

    def _native_usage(self, items: list[Embedded]) -> dict[str, Any]:
        text = sum(item.text_tokens for item in items)
        image = sum(item.image_tokens for item in items)
        video = sum(item.video_tokens for item in items)
        total = text + image + video
        if self.config.usage_shape == "new":
            counts = {"text_tokens": text, "image_tokens": image}
            if video:
                counts["video_tokens"] = video
            details = InputTokensDetails.model_validate(counts)
            usage = NativeUsage(
                input_tokens=total,
                input_tokens_details=details,
                output_tokens=0,
                total_tokens=total,
            )
        else:
            # The older shape has one media counter: video tokens are counted with images.
            media = image + video
            seconds = sum(item.video_seconds for item in items)
            usage = NativeUsage(
                input_tokens=text,
                image_tokens=media if media else None,
                image_count=sum(item.images for item in items) if media else None,
                duration=seconds if seconds else None,
            )
        return usage.model_dump(exclude_none=True)

    # --- answers ---

    def _error(self, dialect: str, problem: ApiFault, request_id: str) -> Response:
        headers = {"x-request-id": request_id}
        if problem.retry_after is not None:
            headers["retry-after"] = str(math.ceil(problem.retry_after))
            headers["retry-after-ms"] = str(round(problem.retry_after * 1000))
        return Response(
            _dumps(error_body(dialect, problem, request_id)),
            status_code=problem.status,
            media_type="application/json",
            headers=headers,
        )

    def _damaged(self, fault: Fault, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        if fault.malformed:
            return Response(_MALFORMED_BODY, media_type="application/json", headers=headers)
        if fault.wrong_count:
            items = payload["data"] if "data" in payload else payload["output"]["embeddings"]
            if len(items) > 1:
                items.pop()
            else:
                items.append({**items[0], "index": items[0]["index"] + 1})
            return Response(_dumps(payload), media_type="application/json", headers=headers)
        body = _dumps(payload)
        half = body[: len(body) // 2]
        if fault.cut:
            return _Hangup(self.connections, partial=(half, len(body)))
        return Response(half, media_type="application/json", headers=headers)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI application, for uvicorn or an in-memory test transport.

    ``app.state.emulator`` holds its :class:`Emulator` (state and counters).
    """
    emulator = Emulator(config or EmulatorConfig())
    app = Starlette(
        routes=[
            Route(OPENAI_PATH, emulator.openai, methods=["POST"]),
            Route(NATIVE_PATH, emulator.native, methods=["POST"]),
            Route("/healthz", emulator.healthz, methods=["GET"]),
            Route("/stats", emulator.stats, methods=["GET"]),
        ]
    )
    app.state.emulator = emulator
    return app


def _parse(body: bytes) -> dict[str, Any]:
    """The body as parsed JSON, which must be an object: the cheap checks look at it before
    any model is built, and the models are validated from it, so it is parsed once."""
    try:
        data = pydantic_core.from_json(body)
    except ValueError as exc:  # the message says what and where, as validation's would
        raise bad_request(f"invalid request body: Invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise bad_request("invalid request body: Input should be an object")
    return data


def _throttle(throttled: Throttled) -> ApiFault:
    return ApiFault(429, throttled.message, code=throttled.code, retry_after=throttled.retry_after)


def _tokens(item: Embedded) -> int:
    return item.text_tokens + item.image_tokens + item.video_tokens


def _dumps(payload: dict[str, Any]) -> bytes:
    return _json(payload).encode()


def _json(value: Any) -> str:
    """Compact JSON, the same text ``json.dumps`` writes, with vectors rendered by
    :func:`_floats`: rendering floats one by one through the json module was most of
    the emulator's CPU time per request."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        if value and all(type(x) is float for x in value):
            return _floats(tuple(value))
        return "[" + ",".join(map(_json, value)) + "]"
    return json.dumps(value, ensure_ascii=False)


def _string(key: Any) -> str:
    return json.dumps(str(key), ensure_ascii=False)


@functools.lru_cache(maxsize=1 << 14)
def _floats(vector: tuple[float, ...]) -> str:
    # Text vectors are mostly zeros; repr() is what json writes for every other float.
    return "[" + ",".join(["0.0" if x == 0.0 else repr(x) for x in vector]) + "]"


def _identity(vector: list[float]) -> list[float]:
    return vector


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's ``encoding_format="base64"``: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "invalid"))
        return f"{where}: {message}" if where else message
    return str(exc)[:300]
