"""Serving the page with uvicorn in the foreground, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib
import ipaddress
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

DEFAULT_PORT = 8765
"""The port ``tongyi-vision ui`` listens on unless told otherwise (``--port 0``: any free one)."""
EXIT_STOPPED = 0
EXIT_INTERRUPTED = 130


def require_web() -> None:
    """Raise :class:`MissingDependencyError` naming the ``ui`` extra unless starlette and
    uvicorn are installed."""
    for module in ("starlette", "uvicorn"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(module, "ui", "The search page") from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one); a port in use or a host that
    is not this machine's is a :class:`ConfigurationError` saying what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"--host {host}: not an address of this machine ({exc})") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({reason}); give another --port (0: any free port)"
        ) from exc
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@dataclass
class _Stop:
    signal: int | None = None


def serve(app: ASGIApp, sock: socket.socket, *, on_started: Callable[[], None]) -> int:
    """Serve ``app`` on ``sock`` until SIGINT (returns 130) or SIGTERM (returns 0).

    ``on_started`` runs once the socket accepts connections (it prints the URL).
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and not self.should_exit:
                on_started()

    config = uvicorn.Config(
        app,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=3,
    )
    server = Server(config)
    stop = _Stop()

    def stopping(signum: int, frame: object) -> None:
        stop.signal = signum
        server.should_exit = True

    # uvicorn re-raises the signal it caught after shutting down, through the handlers it
    # found at start: with these, a requested stop ends with an exit code instead.
    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return EXIT_INTERRUPTED if stop.signal == signal.SIGINT else EXIT_STOPPED
