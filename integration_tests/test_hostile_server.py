"""The clients against a hostile server on a real socket (127.0.0.1): one that drips its
answer a byte at a time, headers included, and one that compresses a bomb. An attempt ends
at its deadline instead of lasting as long as the server drips; nothing hangs."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from integration_tests.conftest import RunningEmulator
from tongyi_vision import APIResponseValidationError, APITimeoutError, AsyncClient, Client

KEY = "sk-hostile"


def _answer() -> bytes:
    data = [{"index": 0, "embedding": [0.5] * 768}]
    body = json.dumps({"data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body.encode()


def _bomb() -> bytes:
    body = gzip.compress(b" " * (64 << 20), compresslevel=9)
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Hostile:
    """A one-thread server that answers every request with ``reply``, ``pause`` seconds
    between bytes (0: all at once)."""

    def __init__(self, reply: bytes, pause: float) -> None:
        self.reply, self.pause = reply, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(1 << 20)
                if not self.pause:
                    connection.sendall(self.reply)
                    return
                for byte in self.reply:
                    if self.stop.is_set():
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(self.pause)
            except OSError:
                return  # the client gave up: what it should do

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def drip() -> Iterator[Hostile]:
    # The whole answer, headers first, a byte every 50 ms: about 30 s of dripping.
    server = Hostile(_answer(), pause=0.05)
    yield server
    server.close()


def _within(seconds: float, run: object) -> BaseException | None:
    """Run ``run()`` on a thread; fail the test if it has not ended after ``seconds`` (a
    hang), else give back what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            run()  # type: ignore[operator]
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return raised[0] if raised else None


def test_the_sync_client_ends_an_attempt_that_drips_at_its_deadline(drip: Hostile) -> None:
    def run() -> None:
        with Client(api_key=KEY, base_url=drip.url, timeout=1, max_retries=1) as client:
            client.embed(["a"])

    error = _within(20, run)
    assert isinstance(error, APITimeoutError)


def test_the_async_client_ends_an_attempt_that_drips_at_its_deadline(drip: Hostile) -> None:
    async def main() -> None:
        async with AsyncClient(api_key=KEY, base_url=drip.url, timeout=1, max_retries=1) as c:
            await c.embed(["a"])

    error = _within(20, lambda: asyncio.run(main()))
    assert isinstance(error, APITimeoutError) and "deadline" in str(error)


def test_a_compressed_bomb_on_the_wire_is_refused_past_the_cap() -> None:
    server = Hostile(_bomb(), pause=0)
    try:

        def run() -> None:
            with Client(api_key=KEY, base_url=server.url, max_retries=0) as client:
                client.embed(["a"])

        error = _within(60, run)
    finally:
        server.close()
    assert isinstance(error, APIResponseValidationError) and "decodes to more than" in str(error)


def test_one_async_client_serves_two_event_loops_one_after_another(
    emulator: RunningEmulator,
) -> None:
    client = AsyncClient(emulator.api_key, base_url=emulator.base_url)

    async def once(text: str) -> list[float]:
        return (await client.embed([text])).vectors[0]

    first = asyncio.run(once("red"))
    second = asyncio.run(once("red"))  # a new loop: a pool of its own, no "loop is closed"
    assert first == second
