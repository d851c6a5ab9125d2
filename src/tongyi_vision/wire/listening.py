"""Listening on a socket with uvicorn, for the two servers of the project (the emulator and
the search page): binding, the URL of a bound socket, and serving until a signal.

Here because the wire package is the one both may import; uvicorn is imported only by the
functions that run a server.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), ready for uvicorn; an
    ``OSError`` (a port in use, a host that is not this machine's) as it comes."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets), no trailing slash."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announcing_server(config: uvicorn.Config, on_started: Callable[[], None]) -> uvicorn.Server:
    """A uvicorn server that calls ``on_started`` once, when it accepts connections."""
    import uvicorn

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and not self.should_exit:
                on_started()

    return Announcing(config)


def serve_until_signal(server: uvicorn.Server, sock: socket.socket) -> int | None:
    """Run ``server`` on ``sock`` in the foreground until SIGINT or SIGTERM asks it to stop
    (or it stops by itself); the signal that stopped it, else ``None``. Closes ``sock``."""
    caught: list[int] = []

    def stopping(signum: int, frame: Any) -> None:
        caught.append(signum)
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
    return caught[0] if caught else None
