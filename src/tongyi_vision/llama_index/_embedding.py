"""``TongyiVisionEmbedding``: LlamaIndex's ``MultiModalEmbedding`` on the core clients.

The class holds settings and framework plumbing only; batching into requests,
retries, concurrency and media handling all happen in :class:`tongyi_vision.Client`
and :class:`tongyi_vision.AsyncClient`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from typing import Any, Literal

import httpx
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import BaseModel, Field, PrivateAttr, SecretStr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.schema import (
    BaseNode,
    ImageDocument,
    ImageNode,
    ImageType,
    MetadataMode,
)

from .._client import AsyncClient, Client
from .._config import resolve_settings
from .._exceptions import MissingDependencyError
from .._limits import FLASH, sniff_video_format
from .._parts import Image, Part
from .._references import media_part
from .._types import ProgressEvent, Usage
from .._video import Video

dispatcher = get_dispatcher(__name__)

#: What the image methods take: LlamaIndex's ``ImageType`` (a path, URL or data URI
#: string, or a ``BytesIO``) and, leniently, a path object or raw bytes.
ImageInput = ImageType | os.PathLike[str] | bytes
#: What the video methods take: an http(s) URL, a ``data:video/...`` URI, a local path.
VideoInput = str | os.PathLike[str] | Video

_HEAD = 64
_NOT_PICKLED = frozenset({"api_key", "default_headers", "callback_manager"})
# LlamaIndex's largest batch. Batches run one after another, so a batch must hold enough
# requests to keep every slot busy: 256 texts made 13 requests of 20, idling slots at each
# batch boundary (about 1.3x the core client's time in the benchmarks).
_DEFAULT_BATCH_SIZE = 2048

# A batch of parts and the progress callback its core call reports to.
_Slice = tuple[list[Part], Callable[[ProgressEvent], None] | None]


class TongyiVisionEmbedding(MultiModalEmbedding):
    """Text, image and video embeddings from ``tongyi-embedding-vision-flash`` / ``-plus``.

    Every modality lands in one vector space, so pass the same instance as both
    ``embed_model`` and ``image_embed_model`` of a ``MultiModalVectorStoreIndex``:
    text queries then find images, and images find texts.

    >>> embedding = TongyiVisionEmbedding()       # key from EMPIRIOLABS_API_KEY
    >>> index = MultiModalVectorStoreIndex.from_documents(
    ...     documents, embed_model=embedding, image_embed_model=embedding
    ... )

    Images are a local path, an http(s) URL (the service downloads it), a
    ``data:image/...`` URI, or a ``BytesIO``; an image node whose file is a
    video is embedded as that video. Settings are resolved once, here: an
    argument first, then ``TONGYI_VISION_MODEL`` / ``TONGYI_VISION_BASE_URL`` /
    ``TONGYI_VISION_DIALECT``, then defaults. The key comes from ``api_key`` or
    from ``EMPIRIOLABS_API_KEY`` (``openai`` dialect) / ``DASHSCOPE_API_KEY``
    (``dashscope``); it is never serialised, so an instance rebuilt with
    ``from_dict`` / ``from_json`` or unpickled reads it from the environment
    again. ``default_headers`` are not serialised either, as they may carry
    credentials.

    Each batch of ``embed_batch_size`` inputs is one call of the core client,
    which splits it into requests within the service's limits and runs up to
    ``max_concurrency`` of them at once; batches run one after another, in the
    async methods too, so no more than ``max_concurrency`` requests are ever in
    flight for one batch method call. ``num_workers`` is not used.

    Call :meth:`close` (or :meth:`aclose`) when done to release connections.
    """

    model_name: str = Field(
        default=FLASH,
        description="The model: tongyi-embedding-vision-flash (768 dimensions) or -plus (1152).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="API key; read from the environment when not given. Never serialised.",
    )
    base_url: str | None = Field(
        default=None, description="Service base URL; the dialect's default when not given."
    )
    dialect: Literal["openai", "dashscope"] | None = Field(
        default=None,
        description="'openai' (EmpirioLabs gateway, default) or 'dashscope' (Alibaba native).",
    )
    dimension: int | None = Field(
        default=None,
        description="Vector size; only the dashscope dialect accepts a non-default one.",
    )
    embed_batch_size: int = Field(
        default=_DEFAULT_BATCH_SIZE,
        gt=0,
        le=2048,
        description="Inputs per call of the core client (which splits them into requests).",
    )
    max_retries: int = Field(default=3, ge=0, description="Retries of a failed request.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds per request.")
    max_concurrency: int = Field(default=8, ge=1, description="Requests in flight at most.")
    auto_fit: bool = Field(
        default=True,
        description="Re-encode local images over 3 MB or in other formats (needs Pillow).",
    )
    default_headers: dict[str, str] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Extra HTTP headers for every request. Never serialised.",
    )

    _client: Client = PrivateAttr()
    _http_async_client: httpx.AsyncClient | None = PrivateAttr(default=None)
    _async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )
    _closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
        PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    )
    _shared_async_client: AsyncClient | None = PrivateAttr(default=None)
    _retired_usage: Usage = PrivateAttr(default_factory=Usage)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        model_name: str | None = None,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        dialect: str | None = None,
        dimension: int | None = None,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        """Resolve the settings and build the sync client (the async one is made on first use).

        ``http_client`` / ``http_async_client`` replace the connections the
        clients would open (for proxies, custom TLS, or tests); they are used as
        given and not closed by :meth:`close`.
        """
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        settings = resolve_settings(
            api_key=api_key,
            base_url=base_url,
            model=model_name,
            dialect=dialect,
            dimension=dimension,
        )
        resolved: dict[str, Any] = {
            "model_name": settings.model,
            "api_key": SecretStr(settings.api_key.get()),
            "base_url": settings.base_url,
            "dialect": settings.dialect,
            "dimension": dimension,
        }
        super().__init__(**resolved, **kwargs)
        self._http_async_client = http_async_client
        self._client = Client(**self._client_options(), http_client=http_client)

    @classmethod
    def class_name(cls) -> str:
        return "TongyiVisionEmbedding"

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation see of this model: no key, no headers."""
        return {
            **super().to_payload(),
            "dialect": self.dialect,
            "dimension": self._client.dimension,
        }

    # --- clients ---

    def _client_options(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key.get_secret_value() if self.api_key else None,
            "base_url": self.base_url,
            "model": self.model_name,
            "dialect": self.dialect,
            "dimension": self.dimension,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
            "auto_fit": self.auto_fit,
            "default_headers": self.default_headers,
        }

    async def _async_client(self) -> AsyncClient:
        """The async client for the running event loop.

        httpx's async connections belong to the loop that opened them, and
        LlamaIndex runs coroutines on loops of its own (``asyncio_run``), so
        each loop gets its own client, unless the caller supplied the connections.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._http_async_client is not None:
                if self._shared_async_client is None:
                    self._shared_async_client = AsyncClient(
                        **self._client_options(), http_client=self._http_async_client
                    )
                return self._shared_async_client
            client = self._async_clients.get(loop)
            if client is not None:
                return client
            client = AsyncClient(**self._client_options())
            closer = _close_on_loop_shutdown(client)
            self._async_clients[loop] = client
            self._closers[loop] = closer
        # Started on this loop, the generator is finalised by loop.shutdown_asyncgens(),
        # which asyncio.run() calls before closing the loop: the connections close in time.
        await closer.asend(None)
        return client

    @property
    def usage(self) -> Usage:
        """Tokens, requests and cost summed over every call this instance has made."""
        with self._lock:
            clients = [self._client, *self._async_clients.values()]
            if self._shared_async_client is not None:
                clients.append(self._shared_async_client)
            total = self._retired_usage
        for client in clients:
            total = total + client.usage
        return total

    def _retire(self, loop: asyncio.AbstractEventLoop) -> AsyncGenerator[None, None] | None:
        """Forget a loop's client (keeping its usage); return the generator that closes it."""
        client = self._async_clients.pop(loop, None)
        if client is not None:
            self._retired_usage = self._retired_usage + client.usage
        return self._closers.pop(loop, None)

    def close(self) -> None:
        """Close the connections this instance opened (not an ``http_client`` passed in).

        That includes the async clients of event loops that are not running,
        such as the one LlamaIndex's ``use_async=True`` runs on in a script;
        from inside a running loop, use :meth:`aclose`.
        """
        self._client.close()
        with self._lock:
            idle = [loop for loop in self._async_clients if not loop.is_running()]
            closers = [(loop, self._retire(loop)) for loop in idle]
        for loop, closer in closers:
            # A closed loop can run nothing more: its connections went with it.
            if closer is not None and not loop.is_closed():
                loop.run_until_complete(closer.aclose())

    async def aclose(self) -> None:
        """Close the sync client and the running loop's async client."""
        self._client.close()
        with self._lock:
            closer = self._retire(asyncio.get_running_loop())
        if closer is not None:
            await closer.aclose()

    def __enter__(self) -> TongyiVisionEmbedding:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> TongyiVisionEmbedding:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[Any, Any]:
        # Pickling (multiprocessing ingestion) must carry neither the key nor the
        # connections: the copy is rebuilt by __init__ and reads the key from the environment.
        # Callback handlers are runtime wiring (often unpicklable): the copy gets fresh ones.
        state = dict(BaseModel.__getstate__(self))
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k not in _NOT_PICKLED}
        state["__pydantic_private__"] = None
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # Unlike BaseComponent, do not fall back to a half-built object when the
        # environment has no key: the ConfigurationError says what to set.
        self.__init__(**state["__dict__"])  # type: ignore[misc]

    # --- inputs to parts ---

    def _image_part(self, image: ImageInput) -> Part:
        """A core part for one of LlamaIndex's image inputs (a video file stays a video)."""
        if isinstance(image, io.BytesIO):
            # getvalue() ignores the read position, so a BytesIO can be embedded twice.
            return Image(image.getvalue(), auto_fit=self.auto_fit)
        if isinstance(image, os.PathLike):
            image = os.fspath(image)
        if isinstance(image, str):
            if image.startswith(("file://", "data:video/")):
                return media_part(image, auto_fit=self.auto_fit) or Image(
                    image, auto_fit=self.auto_fit
                )
            if not image.startswith(("http://", "https://", "data:")) and _is_video_file(image):
                return Video(image)
        return Image(image, auto_fit=self.auto_fit)

    # --- calls ---

    def _embed(
        self, parts: Sequence[Part], progress: Callable[[ProgressEvent], None] | None = None
    ) -> list[Embedding]:
        if not parts:
            return []
        return self._client.embed(parts, progress=progress).vectors

    async def _aembed(
        self, parts: Sequence[Part], progress: Callable[[ProgressEvent], None] | None = None
    ) -> list[Embedding]:
        if not parts:
            return []
        client = await self._async_client()
        result = await client.embed(parts, progress=progress)
        return result.vectors

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(texts)

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._embed([self._image_part(img_file_path)])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aembed([self._image_part(img_file_path)]))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._embed([self._image_part(i) for i in img_file_paths])

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._aembed([self._image_part(i) for i in img_file_paths])

    # --- async batches: one core call per batch, batches in turn ---
    #
    # LlamaIndex's own async batch methods start every batch at once (asyncio.gather),
    # so a large index would put batches x max_concurrency requests in flight.

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed texts in batches of ``embed_batch_size``, one core call per batch."""
        model_dict = self.to_payload()
        results: list[Embedding] = []
        with _Progress(len(texts), show_progress, "Generating embeddings") as bar:
            for batch in _batches(texts, self.embed_batch_size):
                dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
                with self.callback_manager.event(
                    CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
                ) as event:
                    if self.rate_limiter is not None:
                        await self.rate_limiter.async_acquire()
                    if self.embeddings_cache is not None:
                        embeddings = await self._aget_text_embeddings_cached(batch)
                    else:
                        embeddings = await self._aembed(batch, bar.callback)
                    event.on_end(
                        payload={EventPayload.CHUNKS: batch, EventPayload.EMBEDDINGS: embeddings}
                    )
                dispatcher.event(EmbeddingEndEvent(chunks=batch, embeddings=embeddings))
                bar.batch_done(len(batch))
                results.extend(embeddings)
        return results

    async def aget_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed images in batches of ``embed_batch_size``, one core call per batch."""
        return await self._amedia_batch(
            [self._image_part(i) for i in img_file_paths],
            list(img_file_paths),
            show_progress,
            "Generating image embeddings",
        )

    def get_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed images in batches of ``embed_batch_size``, one core call per batch."""
        return self._media_batch(
            [self._image_part(i) for i in img_file_paths],
            list(img_file_paths),
            show_progress,
            "Generating image embeddings",
        )

    # --- as a transformation (IngestionPipeline) ---
    #
    # BaseEmbedding embeds every node's text. For an image node that would embed its
    # metadata ("file_name: cat.png"), and the index would then store that as the
    # image's vector: image nodes get their image embedded instead.

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes in an ``IngestionPipeline``: texts as text, image nodes as images."""
        texts, images = _split_nodes(nodes)
        show_progress = bool(kwargs.get("show_progress", False))
        text_vectors = self.get_text_embedding_batch(
            [n.get_content(metadata_mode=MetadataMode.EMBED) for n in texts], **kwargs
        )
        image_vectors = self.get_image_embedding_batch(
            [image for _, image in images], show_progress=show_progress
        )
        return _attach(nodes, texts, text_vectors, images, image_vectors)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes in an ``IngestionPipeline``: texts as text, image nodes as images."""
        texts, images = _split_nodes(nodes)
        show_progress = bool(kwargs.get("show_progress", False))
        text_vectors = await self.aget_text_embedding_batch(
            [n.get_content(metadata_mode=MetadataMode.EMBED) for n in texts], **kwargs
        )
        image_vectors = await self.aget_image_embedding_batch(
            [image for _, image in images], show_progress=show_progress
        )
        return _attach(nodes, texts, text_vectors, images, image_vectors)

    # --- video ---

    def get_video_embedding(self, video: VideoInput) -> Embedding:
        """Embed one video: an http(s) URL, a ``data:video/...`` URI or a local path."""
        return self.get_video_embedding_batch([video])[0]

    async def aget_video_embedding(self, video: VideoInput) -> Embedding:
        """Embed one video; see :meth:`get_video_embedding`."""
        return (await self.aget_video_embedding_batch([video]))[0]

    def get_video_embedding_batch(
        self, videos: Sequence[VideoInput], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed videos, one vector each, in batches of ``embed_batch_size``."""
        return self._media_batch(
            [_video_part(v) for v in videos], list(videos), show_progress, "Generating embeddings"
        )

    async def aget_video_embedding_batch(
        self, videos: Sequence[VideoInput], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed videos, one vector each; see :meth:`get_video_embedding_batch`."""
        return await self._amedia_batch(
            [_video_part(v) for v in videos], list(videos), show_progress, "Generating embeddings"
        )

    def _media_batch(
        self, parts: list[Part], chunks: list[Any], show_progress: bool, desc: str
    ) -> list[Embedding]:
        flow = self._media_batches(parts, chunks, show_progress, desc)
        try:
            batch, progress = next(flow)
            while True:
                try:
                    vectors = self._embed(batch, progress)
                except BaseException as exc:
                    # Raised inside the flow, so its callback event and progress bar see it.
                    batch, progress = flow.throw(exc)
                else:
                    batch, progress = flow.send(vectors)
        except StopIteration as done:
            return list(done.value)

    async def _amedia_batch(
        self, parts: list[Part], chunks: list[Any], show_progress: bool, desc: str
    ) -> list[Embedding]:
        flow = self._media_batches(parts, chunks, show_progress, desc)
        try:
            batch, progress = next(flow)
            while True:
                try:
                    vectors = await self._aembed(batch, progress)
                except BaseException as exc:
                    batch, progress = flow.throw(exc)
                else:
                    batch, progress = flow.send(vectors)
        except StopIteration as done:
            return list(done.value)

    def _media_batches(
        self, parts: list[Part], chunks: list[Any], show_progress: bool, desc: str
    ) -> Generator[_Slice, list[Embedding], list[Embedding]]:
        """The batch loop of the sync and async media methods, written once: it yields
        each batch of parts with its progress callback and is sent back the vectors."""
        model_dict = self.to_payload()
        results: list[Embedding] = []
        with _Progress(len(parts), show_progress, desc) as bar:
            for start in range(0, len(parts), self.embed_batch_size):
                end = start + self.embed_batch_size
                with self.callback_manager.event(
                    CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
                ) as event:
                    embeddings = yield parts[start:end], bar.callback
                    event.on_end(
                        payload={
                            EventPayload.CHUNKS: _payload_chunks(chunks[start:end]),
                            EventPayload.EMBEDDINGS: embeddings,
                        }
                    )
                bar.batch_done(len(embeddings))
                results.extend(embeddings)
        return results


def _node_image(node: BaseNode) -> ImageType | None:
    """What an image node or document shows, in a form the service takes; ``None`` for text.

    A URL is passed on for the service to download (``resolve_image`` would fetch it here).
    """
    if not isinstance(node, (ImageNode, ImageDocument)):
        return None
    if node.image_path:
        return node.image_path
    if node.image_url:
        return node.image_url
    if node.image:
        return io.BytesIO(base64.b64decode(node.image))
    return None


def _split_nodes(
    nodes: Sequence[BaseNode],
) -> tuple[list[BaseNode], list[tuple[BaseNode, ImageType]]]:
    texts: list[BaseNode] = []
    images: list[tuple[BaseNode, ImageType]] = []
    for node in nodes:
        image = _node_image(node)
        if image is None:
            texts.append(node)
        else:
            images.append((node, image))
    return texts, images


def _attach(
    nodes: Sequence[BaseNode],
    texts: list[BaseNode],
    text_vectors: list[Embedding],
    images: list[tuple[BaseNode, ImageType]],
    image_vectors: list[Embedding],
) -> Sequence[BaseNode]:
    for node, vector in zip(texts, text_vectors, strict=True):
        node.embedding = vector
    for (node, _), vector in zip(images, image_vectors, strict=True):
        node.embedding = vector
    return nodes


async def _close_on_loop_shutdown(client: AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


def _video_part(video: VideoInput) -> Video:
    return video if isinstance(video, Video) else Video(video)


def _is_video_file(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
    except OSError:
        return False  # the image part reports the missing file with its own error
    return sniff_video_format(head) is not None


def _payload_chunks(items: list[Any]) -> list[str]:
    # Callback payloads go to user handlers and tracing: strings, not image bytes.
    return [
        f"<{len(i.getvalue()):,} bytes>"
        if isinstance(i, io.BytesIO)
        else i
        if isinstance(i, str)
        else repr(i)
        for i in items
    ]


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Progress:
    """A tqdm bar that moves after every request of a batch, not only between batches."""

    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self._bar: Any = None
        self._offset = 0
        if enabled and total:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:
                raise MissingDependencyError("tqdm", "llama-index", "show_progress=True") from exc
            self._bar = tqdm(total=total, desc=desc, unit="input")

    @property
    def callback(self) -> Callable[[ProgressEvent], None] | None:
        return self._advance if self._bar is not None else None

    def _advance(self, event: ProgressEvent) -> None:
        # parts_done counts distinct parts of the current batch; never move backwards.
        self._set(self._offset + event.parts_done)

    def batch_done(self, size: int) -> None:
        self._offset += size
        self._set(self._offset)

    def _set(self, value: int) -> None:
        if self._bar is not None and value > self._bar.n:
            self._bar.update(min(value, self._bar.total) - self._bar.n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
