"""``Client`` and ``AsyncClient``: the same decisions (in ``_BaseClient`` and the scheduler's
``Call``), two thin shells that do the I/O."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ._config import Settings, resolve_settings
from ._dialects import path_for
from ._exceptions import (
    ConfigurationError,
    InputError,
    MissingDependencyError,
    TongyiVisionError,
)
from ._limits import (
    DEFAULT_MAX_REQUEST_BYTES,
    MAX_IMAGES_PER_REQUEST,
    MAX_PARTS_PER_REQUEST,
)
from ._parts import Image, ImageSource, MultiImage, Part, prepare_part
from ._planner import Batch, Limits, Plan, dedupe, pack
from ._scheduler import (
    WAIT,
    AdaptiveLimit,
    Call,
    Endpoint,
    RetryPolicy,
    drive_async,
    drive_sync,
)
from ._types import EmbedResult, PartialResult, ProgressEvent, Usage, Vector
from ._video import Video

ProgressCallback = Callable[[ProgressEvent], None]

try:
    from importlib.metadata import version as _version

    __version__ = _version("tongyi-vision")
except Exception:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"


class _BaseClient:
    """Settings, planning and bookkeeping shared by both clients; no I/O."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        dialect: str | None = None,
        dimension: int | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        max_parts_per_request: int = MAX_PARTS_PER_REQUEST,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        auto_fit: bool = True,
        default_headers: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
    ) -> None:
        self._settings: Settings = resolve_settings(
            api_key=api_key, base_url=base_url, model=model, dialect=dialect, dimension=dimension
        )
        for name, value, low in (
            ("max_retries", max_retries, 0),
            ("max_concurrency", max_concurrency, 1),
            ("max_parts_per_request", max_parts_per_request, 1),
            ("max_request_bytes", max_request_bytes, 1024),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"{name} must be an int >= {low}, not {value!r}")
        if max_parts_per_request > MAX_PARTS_PER_REQUEST:
            raise ConfigurationError(
                f"max_parts_per_request is at most {MAX_PARTS_PER_REQUEST}, the service's limit"
            )
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.auto_fit = auto_fit
        self.progress = progress
        self.show_progress = show_progress
        self._limits = Limits(max_parts_per_request, MAX_IMAGES_PER_REQUEST, max_request_bytes)
        self._policy = RetryPolicy(max_retries=max_retries)
        self._limit = AdaptiveLimit(max_concurrency)
        self._url = self._settings.base_url + path_for(self._settings.dialect)
        self._headers = {
            "User-Agent": f"tongyi-vision/{__version__}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            # the client's own Authorization wins, whatever the case of a caller's header
            **{k: v for k, v in (default_headers or {}).items() if k.lower() != "authorization"},
            "Authorization": f"Bearer {self._settings.api_key.get()}",
        }
        self._usage = Usage()
        self._usage_lock = threading.Lock()

    # --- public read-only settings ---

    @property
    def model(self) -> str:
        """The model name sent with every request."""
        return self._settings.model

    @property
    def dialect(self) -> str:
        """``"openai"`` (the EmpirioLabs gateway) or ``"dashscope"`` (Model Studio's own API)."""
        return self._settings.dialect

    @property
    def base_url(self) -> str:
        """The service root, without the endpoint's path."""
        return self._settings.base_url

    @property
    def dimension(self) -> int | None:
        """The size of the vectors this client returns (``None`` for an unknown model)."""
        return self._settings.expected_dimension

    @property
    def usage(self) -> Usage:
        """Usage and cost summed over every call this client has made."""
        return self._usage

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, dialect={self.dialect!r}, "
            f"base_url={self.base_url!r}, api_key='**********')"
        )

    def __getstate__(self) -> object:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled (it holds connections and the API key); "
            "create one in the other process"
        )

    # --- shared steps of a call ---

    def _redact(self, text: str) -> str:
        key = self._settings.api_key.get()
        return text.replace(key, "**********") if key and key in text else text

    def _image(self, item: Image | ImageSource) -> Image:
        return item if isinstance(item, Image) else Image(item, auto_fit=self.auto_fit)

    def _start(
        self,
        parts: Sequence[Part],
        resume: PartialResult | None,
        progress: ProgressCallback | None,
    ) -> tuple[Call, list[Vector | None] | None, Callable[[], None]]:
        """Check every part (raising before any request), dedupe, plan, and set up the call."""
        if isinstance(parts, (str, Image, Video, MultiImage)):
            raise InputError(
                "embed takes a list of parts; wrap a single part in a list: embed([part])"
            )
        known: list[Vector | None] | None = None
        if resume is not None:
            if len(resume.vectors) != len(parts):
                raise InputError(
                    f"resume holds {len(resume.vectors)} results but {len(parts)} parts were "
                    "given; pass the same parts as the failed call"
                )
            known = list(resume.vectors)
        prepared = []
        for index, part in enumerate(parts):
            if known is not None and known[index] is not None:
                continue
            try:
                prepared.append((index, prepare_part(part)))
            except InputError as exc:
                raise exc.at(index) from exc.__cause__
        unique, owners = dedupe(prepared)
        plan = Plan(unique, owners, pack(unique, self._limits))
        callback, close_bar = self._progress_callback(progress, len(prepared))
        call = Call(
            plan,
            endpoint=Endpoint(
                self._settings.dialect,
                self._settings.model,
                self._settings.dimension,
                self._settings.expected_dimension,
                self._redact,
            ),
            policy=self._policy,
            limit=self._limit,
            progress=callback,
            parts_total=len(prepared),
        )
        return call, known, close_bar

    def _progress_callback(
        self, progress: ProgressCallback | None, total: int
    ) -> tuple[ProgressCallback | None, Callable[[], None]]:
        callbacks = [c for c in (progress, self.progress) if c is not None]
        for callback in callbacks:
            if inspect.iscoroutinefunction(callback):
                # it would be called from worker code that cannot await it, and do nothing
                raise TypeError(
                    "progress must be a plain function (called from the client's workers), "
                    "not an async one"
                )
        close: Callable[[], None] = lambda: None  # noqa: E731
        if self.show_progress:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:
                raise MissingDependencyError("tqdm", "progress", "show_progress=True") from exc
            bar = tqdm(total=total, desc="embedding", unit="part")

            def advance(event: ProgressEvent) -> None:
                bar.update(max(0, event.parts_done - bar.n))

            callbacks.append(advance)
            close = bar.close
        if not callbacks:
            return None, close

        def notify(event: ProgressEvent) -> None:
            for callback in callbacks:
                callback(event)

        return notify, close

    def _finish(self, call: Call, total: int, known: list[Vector | None] | None) -> EmbedResult:
        usage = call.usage.priced(self._settings.model)
        with self._usage_lock:
            self._usage = self._usage + usage
        partial = call.partial(total, known)
        partial.usage = usage
        if call.error is not None:
            call.error.partial = partial
            raise call.error
        vectors = partial.vectors
        if any(v is None for v in vectors):  # pragma: no cover - every batch succeeded
            raise TongyiVisionError("internal error: a part has no vector after a successful call")
        return EmbedResult(
            vectors=[v for v in vectors if v is not None],
            usage=usage,
            model=self._settings.model,
            dimension=self._settings.expected_dimension
            or (len(vectors[0] or []) if vectors else 0),
        )

    def _texts(self, texts: Iterable[str]) -> list[Part]:
        items = list(texts)
        for index, text in enumerate(items):
            if not isinstance(text, str):
                raise InputError(
                    f"embed_texts takes strings, not {type(text).__name__}", part_index=index
                )
        return list(items)

    def _images(self, images: Iterable[Image | ImageSource]) -> list[Part]:
        return _wrap(images, self._image)

    def _videos(self, videos: Iterable[Video | str]) -> list[Part]:
        return _wrap(videos, lambda v: v if isinstance(v, Video) else Video(v))


def _wrap(items: Iterable[Any], make: Callable[[Any], Part]) -> list[Part]:
    """Turn each item into a part; a refused one is named by its position."""
    parts = []
    for index, item in enumerate(items):
        try:
            parts.append(make(item))
        except InputError as exc:
            raise exc.at(index) from exc.__cause__
    return parts


def _detach(response: httpx.Response) -> httpx.Response:
    """Break the cycle between a read response and its stream.

    httpx binds a response's stream back to the response, so a finished
    response (with its request, and so the whole request body) lives until the
    garbage collector's next cycle. For a call over many images that held
    tens of megabytes of sent bodies; detached, each body is freed as soon as
    its request is done.
    """
    response.stream = httpx.ByteStream(response.content)
    return response


class Client(_BaseClient):
    """Embeds text, images and video; requests run concurrently on worker threads.

    >>> with Client() as client:                # key from EMPIRIOLABS_API_KEY
    ...     result = client.embed(["a red bicycle", Image("bike.jpg")])
    ...     result.vectors, result.usage.cost_usd

    Arguments (each read once, here; an argument wins over the environment):

    - ``api_key``: else ``EMPIRIOLABS_API_KEY``, or ``DASHSCOPE_API_KEY`` for the
      dashscope dialect; missing, it is a :class:`ConfigurationError`.
    - ``base_url``, ``model``, ``dialect``: else ``TONGYI_VISION_BASE_URL``,
      ``TONGYI_VISION_MODEL``, ``TONGYI_VISION_DIALECT``; else the gateway, flash, openai.
    - ``dimension``: vector size; only the dashscope dialect can change it.
    - ``timeout``: seconds (or an ``httpx.Timeout``) for each attempt of each request,
      also when ``http_client`` is given.
    - ``max_retries``: retries per request, not attempts. ``max_concurrency``: requests
      in flight at once, shared by every call on this client.
    - ``max_parts_per_request`` (at most 20), ``max_request_bytes``: how requests are packed.
    - ``auto_fit``: re-encode images that break the limits (needs Pillow).
    - ``default_headers``: sent with every request. ``http_client``: your own
      ``httpx.Client`` (not closed by :meth:`close`).
    - ``progress``: called with a :class:`ProgressEvent` as requests finish;
      ``show_progress``: a tqdm bar.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        dialect: str | None = None,
        dimension: int | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        max_parts_per_request: int = MAX_PARTS_PER_REQUEST,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        auto_fit: bool = True,
        default_headers: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            model=model,
            dialect=dialect,
            dimension=dimension,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            max_parts_per_request=max_parts_per_request,
            max_request_bytes=max_request_bytes,
            auto_fit=auto_fit,
            default_headers=default_headers,
            progress=progress,
            show_progress=show_progress,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )
        self._sleep: Callable[[float], None] = time.sleep
        # One lock for every call of this client: the concurrency limit is client-wide.
        self._slots = threading.Condition()

    def embed(
        self,
        parts: Sequence[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
    ) -> EmbedResult:
        """Embed each part into one vector, returned in input order.

        Parts are text (``str``), :class:`Image`, :class:`Video` and
        :class:`MultiImage`. Every part is checked before anything is sent;
        equal parts are sent once; requests run concurrently up to
        ``max_concurrency``. If a request finally fails, its :class:`APIError`
        carries ``partial``; ``embed(parts, resume=error.partial)`` then sends
        only the missing parts.
        """
        call, known, close_bar = self._start(parts, resume, progress)
        try:
            self._run(call)
        finally:
            close_bar()
        return self._finish(call, len(parts), known)

    def embed_texts(self, texts: Iterable[str], **kwargs: Any) -> EmbedResult:
        """Embed strings as text, one vector each."""
        return self.embed(self._texts(texts), **kwargs)

    def embed_images(self, images: Iterable[Image | ImageSource], **kwargs: Any) -> EmbedResult:
        """Embed images given as :class:`Image` or anything ``Image`` takes (paths, URLs, bytes)."""
        return self.embed(self._images(images), **kwargs)

    def embed_videos(self, videos: Iterable[Video | str], **kwargs: Any) -> EmbedResult:
        """Embed videos given as :class:`Video` or URLs."""
        return self.embed(self._videos(videos), **kwargs)

    def _send(self, body: bytes) -> httpx.Response:
        response = self._http.post(
            self._url, content=body, headers=self._headers, timeout=self.timeout
        )
        return _detach(response)

    def _run(self, call: Call) -> None:
        workers = min(self.max_concurrency, len(call.queue))
        if workers == 0:
            return
        condition = self._slots

        def wait(seconds: float) -> None:
            with condition:
                call.pause()
                condition.notify_all()
            queued: bool | None = False  # None once the slot is back
            try:
                self._sleep(seconds)
                with condition:
                    call.want_resume()
                    queued = True
                    while not call.try_resume():
                        condition.wait()
                    queued = None
            except BaseException:
                if queued is not None:
                    with condition:
                        call.resume_now(queued)
                raise

        def work() -> None:
            while True:
                with condition:
                    batch = call.try_take()
                    while batch is WAIT:
                        condition.wait()
                        batch = call.try_take()
                if not isinstance(batch, Batch):
                    return
                try:
                    drive_sync(call.run_batch(batch), self._send, wait)
                except BaseException as exc:
                    call.abort(exc)
                    raise
                finally:
                    with condition:
                        call.finish()
                        condition.notify_all()

        if workers == 1:
            work()
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tongyi-vision") as pool:
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                for future in futures:
                    future.result()
            except BaseException as exc:
                call.abort(exc)
                with condition:
                    condition.notify_all()
                raise

    def close(self) -> None:
        """Close the connections this client opened (not an ``http_client`` passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asyncio twin of :class:`Client`: the same methods, awaited; requests run as
    concurrent tasks up to ``max_concurrency``.

    >>> async with AsyncClient() as client:
    ...     result = await client.embed(["a red bicycle", Image("bike.jpg")])
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        dialect: str | None = None,
        dimension: int | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        max_parts_per_request: int = MAX_PARTS_PER_REQUEST,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        auto_fit: bool = True,
        default_headers: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            model=model,
            dialect=dialect,
            dimension=dimension,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            max_parts_per_request=max_parts_per_request,
            max_request_bytes=max_request_bytes,
            auto_fit=auto_fit,
            default_headers=default_headers,
            progress=progress,
            show_progress=show_progress,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self.timeout,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )
        self._sleep: Callable[[float], Any] = asyncio.sleep
        # asyncio primitives belong to one event loop: one condition per loop in use.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Condition] = (
            weakref.WeakKeyDictionary()
        )

    async def embed(
        self,
        parts: Sequence[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
    ) -> EmbedResult:
        """Embed each part into one vector, returned in input order; see :meth:`Client.embed`."""
        call, known, close_bar = self._start(parts, resume, progress)
        try:
            await self._run(call)
        finally:
            close_bar()
        return self._finish(call, len(parts), known)

    async def embed_texts(self, texts: Iterable[str], **kwargs: Any) -> EmbedResult:
        """Embed strings as text, one vector each."""
        return await self.embed(self._texts(texts), **kwargs)

    async def embed_images(
        self, images: Iterable[Image | ImageSource], **kwargs: Any
    ) -> EmbedResult:
        """Embed images given as :class:`Image` or anything ``Image`` takes (paths, URLs, bytes)."""
        return await self.embed(self._images(images), **kwargs)

    async def embed_videos(self, videos: Iterable[Video | str], **kwargs: Any) -> EmbedResult:
        """Embed videos given as :class:`Video` or URLs."""
        return await self.embed(self._videos(videos), **kwargs)

    async def _send(self, body: bytes) -> httpx.Response:
        response = await self._http.post(
            self._url, content=body, headers=self._headers, timeout=self.timeout
        )
        return _detach(response)

    async def _run(self, call: Call) -> None:
        workers = min(self.max_concurrency, len(call.queue))
        if workers == 0:
            return
        loop = asyncio.get_running_loop()
        condition = self._slots.get(loop)
        if condition is None:
            condition = self._slots[loop] = asyncio.Condition()

        async def wait(seconds: float) -> None:
            async with condition:
                call.pause()
                condition.notify_all()
            queued: bool | None = False  # None once the slot is back
            try:
                await self._sleep(seconds)
                async with condition:
                    call.want_resume()
                    queued = True
                    while not call.try_resume():
                        await condition.wait()
                    queued = None
            except BaseException:
                if queued is not None:
                    # No lock needed: nothing else runs on this loop between these lines.
                    call.resume_now(queued)
                raise

        async def work() -> None:
            while True:
                async with condition:
                    batch = call.try_take()
                    while batch is WAIT:
                        await condition.wait()
                        batch = call.try_take()
                if not isinstance(batch, Batch):
                    return
                try:
                    await drive_async(call.run_batch(batch), self._send, wait)
                except BaseException as exc:
                    call.abort(exc)
                    raise
                finally:
                    async with condition:
                        call.finish()
                        condition.notify_all()

        tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def aclose(self) -> None:
        """Close the connections this client opened (not an ``http_client`` passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
