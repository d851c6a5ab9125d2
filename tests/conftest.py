"""Fixtures of the core unit tests: a scripted fake of the service behind
``httpx.MockTransport``, clients wired to it, and a clean environment.

Nothing here opens a socket or sleeps: the clients' ``_sleep`` is replaced by
a recorder, and network sockets are blocked for every test of this folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pytest_socket import disable_socket

from tests._cli_fakes import fake  # noqa: F401  (a fixture of the CLI tests)
from tests._core_fakes import CONFIG_VARS, KEY, AsyncSleeps, FakeService, Sleeps
from tongyi_vision import AsyncClient, Client


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Block network sockets in every unit test, however pytest was started (``pytest tests``
    is as safe as ``tasks.py unit``). Unix sockets stay allowed: asyncio's event loop wakes
    itself through a socketpair. A hook of this folder's conftest: tests elsewhere (the
    integration tests) are not touched."""
    disable_socket(allow_unix_socket=True)


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
