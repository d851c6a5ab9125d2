"""Serving the page with uvicorn in the foreground, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire import listening
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


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one); a port in use or a host that
    is not this machine's is a :class:`ConfigurationError` saying what to do."""
    try:
        return listening.bind(host, port)
    except socket.gaierror as exc:
        raise ConfigurationError(f"--host {host}: not an address of this machine ({exc})") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({reason}); give another --port (0: any free port)"
        ) from exc


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket (IPv6 hosts in brackets)."""
    return listening.socket_url(sock) + "/"


def serve(app: ASGIApp, sock: socket.socket, *, on_started: Callable[[], None]) -> int:
    """Serve ``app`` on ``sock`` until SIGINT (returns 130) or SIGTERM (returns 0).

    ``on_started`` runs once the socket accepts connections (it prints the URL).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=3,
    )
    stopped = listening.serve_until_signal(listening.announcing_server(config, on_started), sock)
    return EXIT_INTERRUPTED if stopped == signal.SIGINT else EXIT_STOPPED
