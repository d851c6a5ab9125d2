"""A real ``redis-server`` for the tests that need one, on 127.0.0.1 and a free port.

- ``running_redis()``: a context manager that starts a server with no persistence
  (``--save "" --appendonly no``) in a temporary folder, waits until it answers PING,
  yields its URL (``redis://127.0.0.1:PORT/0``), and stops it (SIGTERM, then SIGKILL).
- ``redis_url``: a pytest fixture around it, one server per test.

Tests import them: ``from integration_tests._redis import redis_url, running_redis``.
Without ``redis-server`` installed a test skips (fails in CI, see ``_system.py``).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from integration_tests._system import require_program

_START_TIMEOUT = 20.0
_ATTEMPTS = 3  # another process may take the free port between choosing it and binding it


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _start(program: str, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A server that answers PING, or RuntimeError with its log."""
    log = folder / "redis.log"
    for _ in range(_ATTEMPTS):
        port = _free_port()
        command = [
            program,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
            "--logfile", str(log),
            "--daemonize", "no",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return process, port
            time.sleep(0.05)
        _stop(process)  # it exited (the port was taken) or never answered: try another port
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    raise RuntimeError(f"redis-server did not answer PING after {_ATTEMPTS} attempts:\n{text}")


@contextmanager
def running_redis() -> Iterator[str]:
    """A fresh ``redis-server`` for the ``with`` block: yields ``redis://127.0.0.1:PORT/0``."""
    program = require_program("redis-server")
    with tempfile.TemporaryDirectory(prefix="tongyi-vision-redis-") as folder:
        process, port = _start(program, Path(folder))
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(process)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The URL of a ``redis-server`` of this test's own, stopped when the test ends."""
    with running_redis() as url:
        yield url
