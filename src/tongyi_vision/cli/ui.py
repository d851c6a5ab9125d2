"""``tongyi-vision ui INDEX``: a local web page to search an index by text, image or video.

The command decides where queries go (the service, with the key and URL the
other commands use, or the bundled emulator when no key and no URL is set),
prints the page's URL as the first line of stdout, and serves until Ctrl-C
(exit 130) or SIGTERM (exit 0). It listens on 127.0.0.1 unless ``--host`` says
otherwise, and opens no browser by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.client import Client
from ..index import IndexInfo, IndexTable
from ..ui import DEFAULT_PORT, MAX_K, RecentQueries, default_thumbnail_folder, require_web
from ..wire.errors import InputError
from . import common
from .common import dialect_of

__all__ = [
    "DEFAULT_PORT",
    "SearchService",
    "check_ui",
    "key_in_environment",
    "run_ui",
    "say",
    "search_service",
    "serve_index",
    "thumbnail_folder",
]

NOT_SEMANTIC = (
    "its vectors are deterministic but NOT semantic, and match only an index the emulator "
    "built: set EMPIRIOLABS_API_KEY (or DASHSCOPE_API_KEY) to search with the real model"
)


def key_in_environment() -> str | None:
    """The variable holding an API key, if any (an empty value counts as unset)."""
    for name in ("EMPIRIOLABS_API_KEY", "DASHSCOPE_API_KEY"):
        if os.environ.get(name):
            return name
    return None


@dataclass
class SearchService:
    """The client the page searches with, and what to say about it."""

    client: Client
    emulated: bool
    description: str


@contextlib.contextmanager
def search_service(
    args: argparse.Namespace,
    info: IndexInfo,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    emulated: bool = False,
    description: str = "",
) -> Iterator[SearchService]:
    """A client with the index's model, dialect and vector size, closed at the end.

    With ``api_key`` and ``base_url`` (the demo's backend) those are used; otherwise the
    command's options and environment decide, as for ``search``, and when neither an API key
    nor a base URL is set the bundled emulator is started for the block.
    """
    settings: dict[str, Any] = {
        "model": info.model,
        "dialect": dialect_of(args, info.dialect),
        "dimension": info.dimension_option(),
        # The same query again (other filters, another k) is answered from memory.
        "cache": RecentQueries(),
    }
    given_url = base_url or args.base_url or os.environ.get("TONGYI_VISION_BASE_URL")
    if api_key is not None or key_in_environment() is not None or given_url:
        if api_key is not None:
            settings["api_key"] = api_key
        if base_url is not None:
            settings["base_url"] = base_url
        with common.make_client(args, **settings) as client:
            where = description or f"{_shown_url(client.base_url)} ({client.dialect} dialect)"
            yield SearchService(client, emulated, f"queries go to {where}")
        return
    from ..emulator import running_emulator  # only without a key: `--help` stays quick

    key = secrets.token_urlsafe(16)  # nothing else talks to this emulator
    with running_emulator(api_key=key) as url:
        say(f"no API key set: queries go to the bundled emulator at {url}; {NOT_SEMANTIC}")
        settings.update(api_key=key, base_url=url)
        with common.make_client(args, **settings) as client:
            yield SearchService(
                client, True, f"queries go to the bundled emulator at {url} (no API key set)"
            )


def _shown_url(url: str) -> str:
    """A service URL as the page may show it: without a user, password or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def say(line: str) -> None:
    """A line for the person running the command: on stderr (stdout holds only the URL)."""
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def thumbnail_folder(given: Path | None) -> Iterator[Path]:
    """The folder thumbnails are kept in: ``given``, else the user's cache folder, else (when
    that cannot be made) a temporary one removed at the end."""
    folder = given if given is not None else default_thumbnail_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        if given is not None:
            raise InputError(
                f"cannot be made ({exc.strerror or exc}); give another --thumbnails folder",
                part=str(given),
            ) from exc
        with tempfile.TemporaryDirectory(prefix="tongyi-vision-thumbnails-") as temporary:
            say(
                f"warning: {folder} cannot be made ({exc.strerror or exc}); thumbnails are kept "
                f"in {temporary} until the page stops"
            )
            yield Path(temporary)
        return
    yield folder


def serve_index(
    table: IndexTable,
    service: SearchService,
    *,
    host: str,
    port: int,
    k: int,
    thumbnails: Path,
    notes: Sequence[str] = (),
) -> int:
    """Serve the page over ``table`` until stopped; the URL is printed first, on stdout."""
    from ..ui import bind, create_app, serve, url_of
    from ..wire.listening import is_loopback

    sock = bind(host, port)
    url = url_of(sock)
    local = is_loopback(host)
    app = create_app(
        table,
        service.client,
        thumbnails=thumbnails,
        emulated=service.emulated,
        service=service.description,
        default_k=k,
        allowed_hosts=("127.0.0.1", "localhost", "[::1]") if local else ("*",),
    )
    if not local:
        say(
            f"warning: listening on {host}: anyone who can reach this machine can search the "
            "index, see its files and spend the account's tokens"
        )

    def started() -> None:
        print(url, flush=True)
        items = table.count()
        say(f"serving {table.path} ({items:,} item{'s' if items != 1 else ''}) at {url}")
        say(f"  {service.description}")
        for note in notes:
            say(f"  {note}")
        say("  open the URL in a browser; press Ctrl-C to stop")

    code = serve(app, sock, on_started=started)
    say("stopped")
    return code


def run_ui(args: argparse.Namespace) -> int:
    """The ``ui`` command; returns its exit code."""
    require_web()  # a missing extra is said before anything is opened or started
    table = IndexTable.open(args.index, consistent=True)
    with (
        search_service(args, table.info) as service,
        thumbnail_folder(args.thumbnails) as thumbnails,
    ):
        return serve_index(
            table, service, host=args.host, port=args.port, k=args.k, thumbnails=thumbnails
        )


def check_ui(args: argparse.Namespace) -> str | None:
    """A usage error in the options of ``ui`` (or ``demo --ui``), or ``None``."""
    k = getattr(args, "k", None)
    if k is not None and k > MAX_K:
        return f"-k {k}: the page shows at most {MAX_K} results"
    port = args.port
    if port is not None and not 0 <= port <= 65535:
        return f"--port {port}: give a port from 1 to 65535 (0: any free port)"
    return None
