"""Serving the app with uvicorn: on the command line, or in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from ..wire.listening import (
    announcing_server,
    bind,
    is_loopback,
    serve_until_signal,
    socket_url,
)
from ._app import Connections, create_app
from ._config import EmulatorConfig
from ._errors import ApiFault, error_body

NOT_SEMANTIC = (
    "tongyi-vision emulator: vectors are deterministic but NOT semantic "
    "(word features for text, pixel features for images); use it for tests and demos only"
)
_START_TIMEOUT = 15.0


def _protocol(
    connections: Connections, config: EmulatorConfig, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (``base``, default httptools' if installed, else h11's),
    registering each connection's transport so a fault can drop it, and bounding how long
    and how large a request head may be.

    uvicorn's keep-alive timer only runs after an answer: a connection that never sends a
    request, or sends its head a byte at a time, would be held open forever; and httptools
    sets no limit on a head's size. Here a connection waiting for a request head gets
    ``header_timeout`` seconds from connecting, or from the first byte of a later request,
    and ``max_header_bytes``; past either it is answered 408 or 431 (silently closed if it
    sent nothing) and closed.
    """
    if base is None:
        try:
            import httptools  # noqa: F401
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
        except ImportError:  # pragma: no cover - uvicorn without its [standard] extras
            from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class RegisteringProtocol(base):  # type: ignore[misc,valid-type]
        _peer: Any = None
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # uvicorn.Config takes whole seconds; its protocols read this attribute, so setting
            # it here lets a fraction of a second through too.
            self.timeout_keep_alive = config.keep_alive_timeout

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._peer = transport.get_extra_info("peername")
            connections.add(self._peer, transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            connections.remove(self._peer)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if not self._awaiting_head():
                self._head_bytes = 0
                self._stop_head_timer()
                return
            # Counted after parsing, so a chunk that completes a head and carries a body
            # counts for nothing; a head split over chunks counts them all.
            self._head_bytes += len(data)
            if self._head_bytes > config.max_header_bytes:
                limit = config.max_header_bytes
                message = f"request line and headers over the {limit:,}-byte limit"
                self._refuse(431, message, code="BadRequest.TooLarge")
            else:
                self._start_head_timer()

        def _awaiting_head(self) -> bool:
            """True between requests: no request whose head was read is being answered."""
            cycle = self.cycle
            return cycle is None or bool(cycle.response_complete)

        def _start_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(config.header_timeout, self._head_late)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._awaiting_head():
                return
            if self._head_bytes:
                message = f"request line and headers not complete in {config.header_timeout:g} s"
                self._refuse(408, message)
            else:
                self.transport.close()

        def _refuse(self, status: int, message: str, code: str | None = None) -> None:
            self._stop_head_timer()
            self.transport.write(_refusal(ApiFault(status, message, code=code)))
            self.transport.close()

    return RegisteringProtocol


def _refusal(fault: ApiFault) -> bytes:
    """A whole HTTP answer closing the connection, for a request never handed to the app: its
    dialect is unknown, so the body has the native error shape."""
    request_id = str(uuid.uuid4())
    body = json.dumps(error_body("dashscope", fault, request_id)).encode()
    head = (
        f"HTTP/1.1 {fault.status} {http.HTTPStatus(fault.status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _server(config: EmulatorConfig, on_started: Callable[[], None], *, loop: str) -> uvicorn.Server:
    app = create_app(config)
    emulator = app.state.emulator
    settings = uvicorn.Config(
        app,
        http=_protocol(emulator.connections, config),
        ws="none",
        lifespan="off",
        loop=loop,
        log_config=None,
        access_log=config.access_log,
        proxy_headers=False,  # the client address must stay the socket's: faults use it
        server_header=False,
        timeout_graceful_shutdown=5,
        # The h11 protocol's own bound on a request head; httptools has none (see _protocol).
        h11_max_incomplete_event_size=config.max_header_bytes,
    )
    return announcing_server(settings, on_started)


@contextlib.contextmanager
def running_emulator(config: EmulatorConfig | None = None, **options: Any) -> Iterator[str]:
    """Run an emulator on a background thread for the ``with`` block; yields its base URL.

    Options are those of :class:`EmulatorConfig` (``latency`` may also be
    ``"0.05-0.2"``, ``media_roots`` a ``{prefix: folder}`` mapping). It binds
    127.0.0.1 on a free port unless told otherwise.

    >>> with running_emulator(api_key="test-key") as url:
    ...     client = Client("test-key", base_url=url)
    """
    if config is None:
        config = EmulatorConfig.from_options(**options)
    elif options:
        raise TypeError("pass either config or options, not both")
    started = threading.Event()
    server = _server(config, started.set, loop="asyncio")
    sock = bind(config.host, config.port)
    url = socket_url(sock)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="tongyi-vision-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not started.wait(0.02):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start on {url}")
        yield url
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)
        sock.close()


def serve(config: EmulatorConfig) -> int:
    """Serve until SIGINT or SIGTERM; print the base URL first. Returns the exit status."""
    sock = bind(config.host, config.port)
    url = socket_url(sock)
    if not is_loopback(config.host):
        print(
            f"warning: listening on {config.host}, reachable from other machines",
            file=sys.stderr,
            flush=True,
        )

    def announce() -> None:
        print(url, flush=True)
        print(NOT_SEMANTIC, flush=True)

    server = _server(config, announce, loop="auto")
    serve_until_signal(server, sock)  # a requested stop exits 0, not by the signal
    return 0 if server.started else 1
