"""The emulator's command line and its connection handling, in memory (no sockets): the key
from the environment, the connection-timeout flags, and the server protocol that bounds how
long and how large a request head may be, driven through a fake transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tongyi_vision.emulator import EmulatorConfig, build_parser
from tongyi_vision.emulator._cli import API_KEY_VARIABLE, config_from_args
from tongyi_vision.emulator._server import _protocol, _server

# --- the key from the environment ---


def _config(*flags: str, environ: dict[str, str] | None = None) -> EmulatorConfig:
    return config_from_args(build_parser().parse_args(list(flags)), environ or {})


def test_the_key_may_come_from_the_environment() -> None:
    assert API_KEY_VARIABLE == "TONGYI_VISION_EMULATOR_API_KEY"
    assert _config(environ={API_KEY_VARIABLE: "from-env"}).api_key == "from-env"
    assert _config("--api-key", "from-flag", environ={API_KEY_VARIABLE: "env"}).api_key == (
        "from-flag"
    )
    assert _config().api_key is None
    # An empty variable is an unset one; a blank one is a mistake worth saying so.
    assert _config(environ={API_KEY_VARIABLE: ""}).api_key is None
    with pytest.raises(ValueError, match=API_KEY_VARIABLE):
        _config(environ={API_KEY_VARIABLE: "  "})


def test_the_key_variable_is_read_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_VARIABLE, "from-os-env")
    args = build_parser().parse_args([])
    assert config_from_args(args).api_key == "from-os-env"


def test_help_names_the_key_variable() -> None:
    assert API_KEY_VARIABLE in build_parser().format_help()


def test_connection_flags() -> None:
    defaults = _config()
    assert (defaults.keep_alive_timeout, defaults.header_timeout) == (5.0, 5.0)
    assert defaults.max_header_bytes == 64 * 1024
    config = _config(
        "--keep-alive-timeout", "2", "--header-timeout", "0.5", "--max-header-bytes", "4096"
    )
    assert (config.keep_alive_timeout, config.header_timeout) == (2.0, 0.5)
    assert config.max_header_bytes == 4096


@pytest.mark.parametrize(
    "flags",
    [
        ["--header-timeout", "0"],
        ["--keep-alive-timeout", "-1"],
        ["--header-timeout", "inf"],
        ["--max-header-bytes", "0"],
    ],
)
def test_connection_flags_refuse_bad_values(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(flags)


@pytest.mark.parametrize(
    "options",
    [{"header_timeout": 0}, {"keep_alive_timeout": float("nan")}, {"max_header_bytes": 100}],
)
def test_connection_settings_refuse_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**options)


# --- the protocol, through a fake transport ---


class FakeTransport(asyncio.Transport):
    """What uvicorn's protocols need of a transport: it records writes and closing."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return addresses.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Connect = Callable[[EmulatorConfig], tuple[asyncio.Protocol, FakeTransport]]
BASES = {"httptools": HttpToolsProtocol, "h11": H11Protocol}


@pytest.fixture(params=sorted(BASES))
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Connect]:
    """``connect(config)``: a protocol of the emulator's server on a fake connection, with
    each of uvicorn's HTTP parsers; connections are lost at teardown, which stops timers."""
    base = BASES[request.param]
    made: list[asyncio.Protocol] = []

    def make(config: EmulatorConfig) -> tuple[asyncio.Protocol, FakeTransport]:
        settings = _server(config, lambda: None, loop="asyncio").config
        settings.load()
        app: Any = settings.app  # the starlette app _server made, holding the connections
        protocol_class = _protocol(app.state.emulator.connections, config, base)
        protocol = protocol_class(config=settings, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
        transport = FakeTransport()
        protocol.connection_made(transport)
        made.append(protocol)
        return protocol, transport

    yield make
    for protocol in made:
        protocol.connection_lost(None)
    await asyncio.sleep(0)


async def closed(transport: FakeTransport) -> bool:
    """Wait, up to a generous bound, for the server to close the connection."""
    for _ in range(1000):
        if transport.closed:
            return True
        await asyncio.sleep(0.01)
    return False


def status(transport: FakeTransport) -> int:
    return int(bytes(transport.written).split(b" ", 2)[1])


QUICK = EmulatorConfig(header_timeout=0.05, keep_alive_timeout=0.05)


async def test_an_idle_connection_is_closed_silently(connect: Connect) -> None:
    _, transport = connect(QUICK)
    assert await closed(transport)
    assert transport.written == b""


async def test_an_unfinished_head_is_answered_408_and_closed(connect: Connect) -> None:
    protocol, transport = connect(QUICK)
    protocol.data_received(b"GET /healthz HT")
    assert await closed(transport)
    assert status(transport) == 408
    body = json.loads(bytes(transport.written).partition(b"\r\n\r\n")[2])
    assert body["code"] == "RequestTimeOut"


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(connect: Connect) -> None:
    protocol, transport = connect(QUICK)
    head = b"GET /healthz HTTP/1.1\r\n" + b"x-drip: " + b"a" * 10_000
    for byte in head:
        if transport.closed:
            break
        protocol.data_received(bytes([byte]))
        await asyncio.sleep(0.001)
    assert await closed(transport)
    assert status(transport) == 408


async def test_an_oversized_head_is_refused(connect: Connect) -> None:
    protocol, transport = connect(EmulatorConfig(max_header_bytes=4096))
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nx-big: " + b"a" * 2048)
    assert not transport.closed
    protocol.data_received(b"a" * 4096)
    assert transport.closed
    # uvicorn's h11 parser refuses it itself, with its own 400, before the protocol counts.
    assert status(transport) in (431, 400)
    if isinstance(protocol, HttpToolsProtocol):
        assert status(transport) == 431
        body = json.loads(bytes(transport.written).partition(b"\r\n\r\n")[2])
        assert body["code"] == "BadRequest.TooLarge"


async def test_requests_are_answered_then_idle_connections_close(connect: Connect) -> None:
    protocol, transport = connect(QUICK)
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nhost: e\r\n\r\n")
    for _ in range(1000):
        if transport.written:
            break
        await asyncio.sleep(0.01)
    assert status(transport) == 200
    assert transport.written.endswith(b'{"status":"ok"}')
    assert await closed(transport)  # by the keep-alive timeout
