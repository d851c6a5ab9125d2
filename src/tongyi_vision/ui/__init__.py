"""A local web page to search an index by text, image or video: ``tongyi-vision ui INDEX``.

A small static page (plain HTML, CSS and JavaScript in ``ui/static``, nothing
loaded from outside the machine) and its JSON endpoints, on starlette and
uvicorn (the ``ui`` extra: ``pip install 'tongyi-vision[ui]'``). The server
keeps one :class:`~tongyi_vision.Client` for its life, searches the index's
LanceDB table, and serves the files of the index's items by item only, with
thumbnails made once and cached (see :mod:`._files`).

>>> from tongyi_vision import Client
>>> from tongyi_vision.index import IndexTable
>>> from tongyi_vision.ui import create_app, default_thumbnail_folder
>>> table = IndexTable.open(Path("photos.index"), consistent=True)
>>> app = create_app(table, Client(model=table.info.model), thumbnails=default_thumbnail_folder())

The command line (``tongyi-vision ui``) decides the client, prints the URL and
serves on 127.0.0.1; this package imports neither the CLI nor the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._public import show_as_public
from ._files import (
    THUMBNAIL_SIDE,
    ThumbnailCache,
    default_thumbnail_folder,
    item_id_of,
    item_token,
    media_path,
)
from ._search import DEFAULT_K, MAX_K, Filters, QueryError, RecentQueries, Searcher
from ._server import DEFAULT_PORT, bind, require_web, serve, url_of

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from starlette.types import ASGIApp

    from ..engine.client import Client
    from ..index import IndexTable


def create_app(
    table: IndexTable,
    client: Client,
    *,
    thumbnails: Path,
    emulated: bool = False,
    service: str = "",
    default_k: int = DEFAULT_K,
    allowed_hosts: Collection[str] = ("127.0.0.1", "localhost", "[::1]"),
    **limits: Any,
) -> ASGIApp:
    """The page's ASGI application over ``table``, searching with ``client``.

    ``thumbnails`` is the folder thumbnails are kept in (see
    :func:`default_thumbnail_folder`); ``emulated`` says that ``client`` talks to the
    emulator, which bills nothing; ``service`` is one line saying where queries go.
    ``allowed_hosts`` are the names requests may address in their ``Host`` header
    (default: the loopback names; ``("*",)``: any, for a server listening elsewhere):
    a page of another site that rebinds its name to 127.0.0.1 is refused.
    ``limits``: ``max_image_upload`` and ``max_video_upload``, in bytes.
    """
    require_web()
    from . import _app

    return _app.create_app(
        table,
        client,
        thumbnails=thumbnails,
        emulated=emulated,
        service=service,
        default_k=default_k,
        allowed_hosts=allowed_hosts,
        **limits,
    )


__all__ = [
    "DEFAULT_K",
    "DEFAULT_PORT",
    "MAX_K",
    "THUMBNAIL_SIDE",
    "Filters",
    "QueryError",
    "RecentQueries",
    "Searcher",
    "ThumbnailCache",
    "bind",
    "create_app",
    "default_thumbnail_folder",
    "item_id_of",
    "item_token",
    "media_path",
    "require_web",
    "serve",
    "url_of",
]

show_as_public(globals())
