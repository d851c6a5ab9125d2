"""Sending one attempt: a total deadline for it, and a cap on the size of its answer.

httpx times each read of a socket, not an attempt: a server that drips its answer one
byte at a time keeps an attempt alive for as long as it drips. So every attempt runs
under a deadline. The connections a sync client opens check it on every read and write
(:class:`DeadlineBackend` caps each socket timeout by the time left); the async client
cancels the attempt when its deadline passes; and the answer is read in chunks, the
deadline checked between them, which also covers an ``http_client`` passed in. The
answer is decoded (gzip included) chunk by chunk and refused past a cap, so a small
compressed body cannot inflate into gigabytes of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

# The largest valid answer is 20 vectors of 1,152 floats, under a megabyte of JSON; an answer
# many times that is no embeddings answer.
MAX_ANSWER_BYTES = 16 * 1024 * 1024

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tongyi_vision_deadline", default=None
)


class AnswerTooLarge(httpx.DecodingError):
    """The decoded answer grew past :data:`MAX_ANSWER_BYTES`."""


def attempt_seconds(timeout: httpx.Timeout) -> float | None:
    """The total time an attempt may take: the largest of the timeout's parts."""
    parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
    return max(parts) if parts else None


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[float | None]:
    """Run the block under a deadline ``seconds`` from now (none when ``None``)."""
    at = None if seconds is None else time.monotonic() + seconds
    token = _DEADLINE.set(at)
    try:
        yield at
    finally:
        _DEADLINE.reset(token)


def _left(kind: type[Exception]) -> float | None:
    """Seconds left before the deadline (``None`` without one); past it, raise ``kind``:
    httpcore's timeouts inside its sockets (httpx maps them), httpx's in this module."""
    at = _DEADLINE.get()
    if at is None:
        return None
    left = at - time.monotonic()
    if left <= 0:
        raise kind("the attempt ran past its deadline; raise timeout=... if this persists")
    return left


def _capped(timeout: float | None, kind: type[httpcore.TimeoutException]) -> float | None:
    left = _left(kind)
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        limit = _capped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, limit))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each read and write bounded by the attempt's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        limit = _capped(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, limit, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - the client speaks TCP
        limit = _capped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, limit, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - only httpcore's retries sleep
        self._backend.sleep(seconds)


def open_sync(timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.Client:
    """An ``httpx.Client`` whose sockets honour the attempt deadline."""
    transport = httpx.HTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool):
        # httpx builds the pool with httpcore's default backend; put the deadline around it.
        pool._network_backend = DeadlineBackend(pool._network_backend)
    return httpx.Client(timeout=timeout, transport=transport)


# Compressed answers are inflated at most this much at a time.
_STEP = 1 << 20
# What the client asks for: the encodings it decodes itself, under the cap.
ACCEPT_ENCODING = "gzip, deflate"


def _answer(response: httpx.Response, content: bytes) -> httpx.Response:
    """The answer as a plain in-memory response.

    httpx binds a response's stream back to the response, so a finished response (with its
    request, and so the whole request body) would live until the garbage collector's next
    cycle; for a call over many images that held tens of megabytes of sent bodies. Breaking
    that cycle frees each body as soon as its request is done.
    """
    response.stream = httpx.ByteStream(b"")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
    return httpx.Response(response.status_code, headers=headers, content=content)


class _Body:
    """An answer's bytes as they arrive, decoded (gzip or deflate) in steps of at most
    :data:`_STEP` bytes, so that a small compressed body cannot inflate past the cap in one
    go; the deadline is checked between steps."""

    def __init__(self, encoding: str, response: httpx.Response) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._inflater = None
        if response.is_stream_consumed:
            # A transport that read and decoded the body itself (a test's MockTransport).
            self._keep(response.content)
            return
        name = encoding.strip().lower()
        if name in ("", "identity"):
            self._inflater = None
        elif name in ("gzip", "x-gzip", "deflate"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or zlib header
        else:
            raise httpx.DecodingError(
                f"the answer is encoded as {encoding!r}, which the client did not ask for"
            )

    def feed(self, data: bytes) -> None:
        if self._inflater is None:
            self._keep(data)
            return
        try:
            while data:
                self._keep(self._inflater.decompress(data, _STEP))
                data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise httpx.DecodingError(f"the compressed answer is corrupt ({exc})") from None

    def content(self) -> bytes:
        if self._inflater is not None:
            self._keep(self._inflater.flush())
        return b"".join(self._chunks)

    def _keep(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(
                f"the answer decodes to more than {MAX_ANSWER_BYTES:,} bytes; no embeddings "
                "answer is that large"
            )
        self._chunks.append(chunk)
        _left(httpx.ReadTimeout)


def post(http: httpx.Client, url: str, **request: Any) -> httpx.Response:
    """Send one attempt and read its answer, under the deadline set by :func:`deadline`."""
    _left(httpx.ConnectTimeout)
    with http.stream("POST", url, **request) as response:
        body = _Body(response.headers.get("content-encoding", ""), response)
        if not response.is_stream_consumed:
            for chunk in response.iter_raw():
                body.feed(chunk)
        return _answer(response, body.content())


async def apost(
    http: httpx.AsyncClient, url: str, seconds: float | None, **request: Any
) -> httpx.Response:
    """The async :func:`post`: the whole attempt is cancelled when ``seconds`` have passed."""

    async def attempt() -> httpx.Response:
        async with http.stream("POST", url, **request) as response:
            body = _Body(response.headers.get("content-encoding", ""), response)
            if not response.is_stream_consumed:
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
            return _answer(response, body.content())

    with deadline(seconds):
        try:
            if seconds is None:
                return await attempt()
            return await asyncio.wait_for(attempt(), seconds)
        except asyncio.TimeoutError:
            raise httpx.ReadTimeout(
                f"the attempt ran past its deadline of {seconds:g} s; "
                "raise timeout=... if this persists"
            ) from None
