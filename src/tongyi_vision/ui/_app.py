"""The page's ASGI application (starlette): the static page, its JSON endpoints, and the media
files of the index's items, by item only.

Routes::

    GET  /                          the page (ui/static/index.html)
    GET  /static/app.js, style.css  its script and style
    GET  /api/summary               the index, the service, the usage since the server started
    POST /api/search                {"text": ...} or {"like": ITEM_ID}, with "kinds", "k"
    POST /api/search/image          the image as the raw body; ?name=&kinds=&k=
    POST /api/search/video          the video as the raw body; ?name=&kinds=&k=
    GET  /media/{token}             an image or video item's file (HTTP Range for video)
    GET  /media/{token}/thumb       its thumbnail (JPEG, made once)
    GET  /healthz                   "ok"

Every error is JSON ``{"error": message}`` (and ``"reason"``, the message without the
name of the upload or item, for a refused query) with a 4xx or 5xx status. The API key
is the client's and never leaves it: no response carries it.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.client import Client
from ..index import IndexTable, Row
from ..wire.errors import APIError, InputError, MissingDependencyError, TongyiVisionError
from ._files import ThumbnailCache, item_id_of, media_path
from ._search import (
    DEFAULT_K,
    Answer,
    Filters,
    QueryError,
    Searcher,
    UploadTooLargeError,
    answer_record,
    checked_upload,
)

MAX_IMAGE_UPLOAD = 32 * 1024 * 1024
"""The largest image the page takes (the client re-encodes one over 3 MB to fit)."""
MAX_VIDEO_UPLOAD = 256 * 1024 * 1024
"""The largest video the page takes (it is sampled into frames here, not sent whole)."""
MAX_JSON_BODY = 64 * 1024
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Nothing from outside the machine: scripts, styles, pictures and clips come from this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    table: IndexTable,
    client: Client,
    *,
    thumbnails: Path,
    emulated: bool = False,
    service: str = "",
    default_k: int = DEFAULT_K,
    allowed_hosts: Collection[str] = LOOPBACK_NAMES,
    max_image_upload: int = MAX_IMAGE_UPLOAD,
    max_video_upload: int = MAX_VIDEO_UPLOAD,
) -> ASGIApp:
    """The page's application over one index, searching with ``client`` (kept for the app's
    life; the caller closes it).

    ``thumbnails``: the folder thumbnails are kept in. ``emulated``: the client talks to the
    bundled emulator (the page says that it bills nothing). ``service``: one line saying
    where queries go. ``allowed_hosts``: the host names a request may address (the
    ``Host`` header; refuses a page of another site reaching this one by DNS rebinding);
    ``"*"`` among them: any.
    """
    searcher = Searcher(table, client, default_k=default_k)
    cache = ThumbnailCache(thumbnails)
    static = {name: _static_bytes(name) for name in ("index.html", *STATIC_FILES)}

    async def page(request: Request) -> Response:
        return Response(
            static["index.html"],
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
            },
        )

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return _error(404, "not found")
        return Response(
            static[name], media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    async def summary(request: Request) -> Response:
        record = await run_in_threadpool(searcher.summary, emulated=emulated, service=service)
        return JSONResponse(record, headers={"Cache-Control": "no-store"})

    async def search(request: Request) -> Response:
        started = time.perf_counter()
        body = await _read_body(request, MAX_JSON_BODY, "query")
        try:
            given = json.loads(body)
        except ValueError:
            raise QueryError('the body is not JSON; send {"text": "..."}') from None
        if not isinstance(given, dict):
            raise QueryError('send a JSON object: {"text": "..."} or {"like": "ITEM_ID"}')
        filters = Filters.parse(given.get("kinds"), given.get("k"), default_k)
        if "like" in given:
            answer = await run_in_threadpool(searcher.like, given["like"], filters)
        else:
            answer = await run_in_threadpool(searcher.by_text, given.get("text"), filters)
        return _answer(answer, started)

    async def search_image(request: Request) -> Response:
        started = time.perf_counter()
        filters = _query_filters(request, default_k)
        name = _upload_name(request, "the image")
        data = await _read_body(request, max_image_upload, "image")
        answer = await run_in_threadpool(searcher.by_image, data, name, filters)
        return _answer(answer, started)

    async def search_video(request: Request) -> Response:
        started = time.perf_counter()
        filters = _query_filters(request, default_k)
        name = _upload_name(request, "the video")
        with tempfile.TemporaryDirectory(prefix="tongyi-vision-ui-") as folder:
            path = Path(folder) / "query-video"
            await _save_body(request, path, max_video_upload, "video")
            answer = await run_in_threadpool(searcher.by_video, path, name, filters)
        return _answer(answer, started)

    async def media(request: Request) -> Response:
        found = await run_in_threadpool(_media_of, request.path_params["token"])
        if found is None:
            return _error(404, "not found")
        row, path = found
        # The type sniffed when the file was indexed, not one guessed from its name.
        mime = row.metadata.get("mime_type")
        known = isinstance(mime, str) and mime.startswith(("image/", "video/"))
        return FileResponse(
            path,
            media_type=mime if known else None,
            headers={"Cache-Control": "private, max-age=300"},
        )

    async def thumb(request: Request) -> Response:
        found = await run_in_threadpool(_media_of, request.path_params["token"])
        if found is None:
            return _error(404, "not found")
        row, path = found
        try:
            made = await run_in_threadpool(cache.get, row, path)
        except InputError as exc:
            return _error(415, exc.reason)
        return FileResponse(
            made.path,
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    def _media_of(token: str) -> tuple[Row, Path] | None:
        item_id = item_id_of(token)
        if item_id is None:
            return None
        row = searcher.item(item_id)
        path = None if row is None else media_path(row)
        return None if row is None or path is None else (row, path)

    async def healthz(request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/api/summary", _guarded(summary), methods=["GET"]),
        Route("/api/search", _guarded(search), methods=["POST"]),
        Route("/api/search/image", _guarded(search_image), methods=["POST"]),
        Route("/api/search/video", _guarded(search_video), methods=["POST"]),
        Route("/media/{token}", media, methods=["GET"]),
        Route("/media/{token}/thumb", thumb, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "not found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, "method not allowed")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.searcher = searcher
    app.state.thumbnails = cache
    return _Gate(app, allowed_hosts)


def _static_bytes(name: str) -> bytes:
    return (importlib.resources.files(__package__) / "static" / name).read_bytes()


def _guarded(handler: Handler) -> Handler:
    """``handler`` with the errors of a query answered as JSON: the page shows the message."""

    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except UploadTooLargeError as exc:
            return _error(413, str(exc), reason=exc.reason)
        except InputError as exc:
            return _error(400, str(exc), reason=exc.reason)
        except MissingDependencyError as exc:
            return _error(501, str(exc))
        except APIError as exc:
            # The client's messages never hold the key (it masks it wherever it appears).
            return _error(502, f"the embedding service refused the query: {exc}")
        except TongyiVisionError as exc:
            return _error(500, str(exc))

    return answer


def _answer(answer: Answer, started: float) -> Response:
    took = (time.perf_counter() - started) * 1000
    return JSONResponse(answer_record(answer, took), headers={"Cache-Control": "no-store"})


def _error(status: int, message: str, *, reason: str | None = None) -> Response:
    """An error answer: ``error`` says it all (naming the upload or item at fault), and for a
    refused query ``reason`` says it without the name, for a page that shows the name."""
    body = {"error": " ".join(message.split())}
    if reason is not None:
        body["reason"] = " ".join(reason.split())
    return JSONResponse(
        body,
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _query_filters(request: Request, default_k: int) -> Filters:
    return Filters.parse(
        request.query_params.get("kinds"), request.query_params.get("k"), default_k
    )


def _upload_name(request: Request, fallback: str) -> str:
    """The uploaded file's name, for messages only (never a path on this machine)."""
    name = os.path.basename(request.query_params.get("name", "").replace("\\", "/"))
    printable = "".join(c for c in name if c.isprintable())[:120]
    return repr(printable) if printable else fallback


def _declared_size(request: Request) -> int | None:
    value = request.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused past ``limit`` bytes (read no further than that)."""
    checked_upload(_declared_size(request), limit, what)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        checked_upload(size, limit, what)
        chunks.append(chunk)
    checked_upload(size, limit, what)
    return b"".join(chunks)


async def _save_body(request: Request, path: Path, limit: int, what: str) -> None:
    """Write the request body to ``path`` (in a temporary folder), refused past ``limit``."""
    checked_upload(_declared_size(request), limit, what)
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            checked_upload(size, limit, what)
            out.write(chunk)
    checked_upload(size, limit, what)


class _Gate:
    """Checks every request before the app sees it: the ``Host`` it addresses must be one
    of ``allowed_hosts`` (a web page of another site that rebinds its name to 127.0.0.1 is
    refused), and a browser's POST must come from this page's own origin (another site's
    page cannot spend the account's tokens). Adds headers that keep responses from being
    sniffed or framed."""

    def __init__(self, app: Starlette, allowed_hosts: Collection[str]) -> None:
        self.app = app
        self.state = app.state
        self.allowed_hosts = (
            None if "*" in allowed_hosts else frozenset(h.lower() for h in allowed_hosts)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.allowed_hosts is not None and _host_name(host) not in self.allowed_hosts:
            await _error(421, "this server answers only requests addressed to 127.0.0.1")(
                scope, receive, send
            )
            return
        origin = headers.get("origin")
        if (
            scope["method"] not in ("GET", "HEAD")
            and origin is not None
            and urllib.parse.urlsplit(origin).netloc.lower() != host.lower()
        ):
            await _error(403, "requests from other sites' pages are refused")(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
