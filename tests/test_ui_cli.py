"""``tongyi-vision ui`` and ``demo --ui`` without a socket: their options, the client they
choose, where thumbnails go, and what they print before serving (the server itself is
replaced; integration_tests/test_ui_http.py runs the real one)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import tongyi_vision.ui
from tests._core_fakes import KEY
from tongyi_vision import Client, cli
from tongyi_vision.cli import build_parser
from tongyi_vision.cli import ui as ui_command
from tongyi_vision.index import IndexInfo, IndexTable
from tongyi_vision.ui import DEFAULT_PORT, RecentQueries
from tongyi_vision.wire.errors import ConfigurationError, InputError

FLASH = "tongyi-embedding-vision-flash"


def ui_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["ui", *argv])


@pytest.fixture
def table(tmp_path: Path) -> IndexTable:
    return IndexTable.create(tmp_path / "index", IndexInfo(FLASH, 512, "dashscope"))


def test_the_defaults_listen_on_loopback_at_the_documented_port() -> None:
    args = ui_args("photos.index")
    assert (args.host, args.port, args.k, args.thumbnails) == ("127.0.0.1", DEFAULT_PORT, 12, None)
    assert DEFAULT_PORT == 8765
    demo = build_parser().parse_args(["demo", "--ui", "--port", "0"])
    assert demo.ui and demo.port == 0 and demo.host == "127.0.0.1"


@pytest.mark.parametrize(
    "argv",
    [
        ["ui"],
        ["ui", "idx", "-k", "0"],
        ["ui", "idx", "-k", "201"],
        ["ui", "idx", "--port", "70000"],
        ["ui", "idx", "--port", "-1"],
        ["ui", "idx", "--model", "tongyi-embedding-vision-plus"],  # the index's model decides
        ["demo", "--port", "x"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_with_a_key_the_client_has_the_index_settings(
    monkeypatch: pytest.MonkeyPatch, table: IndexTable
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    args = ui_args(str(table.path), "--base-url", "http://127.0.0.1:9")
    with ui_command.search_service(args, table.info) as service:
        client = service.client
        assert (client.model, client.dialect, client.dimension) == (FLASH, "dashscope", 512)
        assert client.base_url == "http://127.0.0.1:9"
        assert client.cache is not None and isinstance(client.cache.store, RecentQueries)
        assert not service.emulated
        assert service.description == "queries go to http://127.0.0.1:9 (dashscope dialect)"
        assert KEY not in repr(client) and KEY not in service.description


def test_a_url_without_a_key_asks_for_the_key(
    monkeypatch: pytest.MonkeyPatch, table: IndexTable
) -> None:
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", "http://127.0.0.1:9")
    with (
        pytest.raises(ConfigurationError, match="no API key"),
        ui_command.search_service(ui_args(str(table.path)), table.info),
    ):
        pass


def test_thumbnails_go_where_asked_else_to_the_users_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = tmp_path / "thumbs"
    with ui_command.thumbnail_folder(given) as folder:
        assert folder == given and given.is_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with ui_command.thumbnail_folder(None) as folder:
        assert folder == tmp_path / "cache" / "tongyi-vision" / "thumbnails" and folder.is_dir()


def test_a_cache_that_cannot_be_made_falls_back_to_a_temporary_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with ui_command.thumbnail_folder(None) as folder:
        assert folder.is_dir() and "tongyi-vision-thumbnails-" in folder.name
    assert not folder.exists()
    assert "thumbnails are kept in" in capsys.readouterr().err
    with (
        pytest.raises(InputError, match="give another --thumbnails folder"),
        ui_command.thumbnail_folder(blocker / "thumbs"),
    ):
        pass


class FakeSocket:
    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)

    def getsockname(self) -> tuple[str, int]:
        return self.address


def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace binding and serving: record the app and print what the server would."""
    apps: list[Any] = []

    def bind(given_host: str, port: int) -> FakeSocket:
        return FakeSocket(given_host, 8765 if port == 0 else port)

    def serve(app: Any, sock: Any, *, on_started: Callable[[], None]) -> int:
        on_started()
        apps.append(app)
        return 130

    monkeypatch.setattr(tongyi_vision.ui, "bind", bind)
    monkeypatch.setattr(tongyi_vision.ui, "serve", serve)
    return apps


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_the_url_is_printed_first_and_another_host_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    table: IndexTable,
    tmp_path: Path,
    host: str,
    warned: bool,
) -> None:
    apps = served(monkeypatch)
    client = Client(KEY, model=FLASH, dialect="dashscope", dimension=512)
    service = ui_command.SearchService(client, False, "queries go to a test")
    with client:
        code = ui_command.serve_index(
            table, service, host=host, port=0, k=7, thumbnails=tmp_path / "t", notes=["a note"]
        )
    assert code == 130
    out, err = capsys.readouterr()
    assert out == f"http://{host}:8765/\n"
    assert ("warning: listening on 0.0.0.0" in err) is warned
    assert "a note" in err and "queries go to a test" in err and err.rstrip().endswith("stopped")
    # Loopback: only requests addressed to loopback names; elsewhere, any name.
    with TestClient(apps[0], base_url="http://192.168.1.20:8765") as test:
        status = test.get("/healthz").status_code
    assert status == (200 if warned else 421)


def test_without_the_ui_extra_the_command_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], table: IndexTable
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    assert cli.main(["ui", str(table.path)]) == 5
    assert "pip install 'tongyi-vision[ui]'" in capsys.readouterr().err


def test_a_url_with_credentials_is_shown_without_them(
    monkeypatch: pytest.MonkeyPatch, table: IndexTable
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    args = ui_args(str(table.path), "--base-url", "https://user:secret@gateway.example:8443/v?t=x")
    with ui_command.search_service(args, table.info) as service:
        assert service.description == (
            "queries go to https://gateway.example:8443/v (dashscope dialect)"
        )
