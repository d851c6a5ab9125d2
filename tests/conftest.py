"""Fixtures of the core unit tests: a scripted fake of the service behind
``httpx.MockTransport``, clients wired to it, and a clean environment.

Nothing here opens a socket or sleeps: the clients' ``_sleep`` is replaced by
a recorder, and pytest runs with ``--disable-socket``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from _core_fakes import CONFIG_VARS, KEY, AsyncSleeps, FakeService, Sleeps
from tongyi_vision import AsyncClient, Client


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Under ``--disable-socket``, still allow Unix sockets: asyncio's event loop wakes itself
    through a socketpair, so async tests cannot run without them. Network sockets stay
    blocked (the same policy as ``--allow-unix-socket``, made the default here)."""
    from pytest_socket import _STASH_KEY

    socket_config = config.stash.get(_STASH_KEY, None)
    if socket_config is not None:
        socket_config.allow_unix_socket = True


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the configuration variables of a developer's shell."""
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    """``make_client(handler, **options)``: a Client on a MockTransport with recorded sleeps
    (``client._sleep.delays``)."""
    clients: list[Client] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> Client:
        options.setdefault("api_key", KEY)
        http = httpx.Client(transport=httpx.MockTransport(handler))
        client = Client(http_client=http, **options)
        client._sleep = Sleeps()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client._http.close()


@pytest.fixture
async def make_async_client() -> Any:
    """``make_async_client(handler, **options)``: an AsyncClient on a MockTransport."""
    connections: list[httpx.AsyncClient] = []

    def make(handler: Callable[[httpx.Request], Any], **options: Any) -> AsyncClient:
        options.setdefault("api_key", KEY)
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = AsyncClient(http_client=http, **options)
        client._sleep = AsyncSleeps()
        connections.append(http)
        return client

    yield make
    for http in connections:
        await http.aclose()
