"""``TongyiVisionEmbeddings``: LangChain's ``Embeddings`` over the core clients."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Literal

import httpx
from langchain_core.embeddings import Embeddings
from langchain_core.load.serializable import Serializable
from langchain_core.utils import from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from .._client import AsyncClient, Client
from .._config import resolve_settings
from .._limits import FLASH, sniff_image_format
from .._parts import Image, Part
from .._references import media_part
from .._types import Usage
from .._video import Video

# Raw base64 (what Chroma stores as an image document's text): the alphabet, padding and
# line breaks, long enough that a short word is never mistaken for an image.
_RAW_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]{16,}")
_URI_PREFIXES = ("data:", "http://", "https://", "file://")


def _dialect_from_env() -> Any:
    # Checked with the other settings by the core, which names the variable when it is wrong.
    return os.environ.get("TONGYI_VISION_DIALECT") or None


class TongyiVisionEmbeddings(Serializable, Embeddings):
    """Text, image and video embeddings from Alibaba's tongyi-embedding-vision models.

    A drop-in ``Embeddings`` for any LangChain vector store. Strings given to
    :meth:`embed_documents` (and :meth:`embed_query`) that are media references,
    a ``file://`` URI of an image or video or a ``data:image/...`` /
    ``data:video/...`` URI, are embedded as that image or video, so documents
    made by :class:`TongyiImageLoader` become image vectors in any store and
    come back from text queries. :meth:`embed_image` is the method Chroma's
    ``add_images`` and ``similarity_search_by_image`` call.

    The key comes from ``api_key`` or, when it is not given, from
    ``EMPIRIOLABS_API_KEY`` (``openai`` dialect, the default) or
    ``DASHSCOPE_API_KEY`` (``dashscope`` dialect), read when the object is
    constructed. Batching, concurrency and retries are the core client's.

    >>> embeddings = TongyiVisionEmbeddings()
    >>> store = InMemoryVectorStore(embeddings)
    >>> store.add_documents(TongyiImageLoader("photos/").load())
    >>> store.similarity_search("a red bicycle")
    """

    model: str = Field(default_factory=from_env("TONGYI_VISION_MODEL", default=FLASH))
    """Model name: ``tongyi-embedding-vision-flash`` (768 dimensions) or ``-plus`` (1152)."""
    api_key: SecretStr | None = None
    """API key; when ``None``, read from the dialect's environment variable."""
    base_url: str | None = Field(default_factory=from_env("TONGYI_VISION_BASE_URL", default=None))
    """Service root, without the path; the dialect's default when ``None``."""
    dialect: Literal["openai", "dashscope"] | None = Field(default_factory=_dialect_from_env)
    """``openai`` (the EmpirioLabs gateway, default) or ``dashscope`` (Alibaba's native API)."""
    dimension: int | None = None
    """Vector size; only the ``dashscope`` dialect can change it from the model's default."""
    max_retries: int = 3
    """Retries (not attempts) of a request after a rate limit, timeout or server error."""
    timeout: float | None = 60.0
    """Seconds to wait for a request; ``None`` waits forever."""
    max_concurrency: int = 8
    """Requests in flight at once, in threads (sync) or tasks (async)."""
    show_progress_bar: bool = False
    """Show a tqdm progress bar over the parts of each call."""
    default_headers: dict[str, str] | None = None
    """Extra HTTP headers sent with every request."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    """An ``httpx.Client`` to send the sync requests with (proxies, certificates...)."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """An ``httpx.AsyncClient`` for the async methods; it must be used from one event loop."""
    embed_media_references: bool = True
    """Embed ``file://`` and ``data:`` URIs of images and videos as media, not as text."""
    auto_fit: bool = True
    """Re-encode local images that break the service's limits (size, format) with Pillow."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        protected_namespaces=(),
        arbitrary_types_allowed=True,
    )

    _client: Client = PrivateAttr()
    _async_client: AsyncClient | None = PrivateAttr(default=None)
    _async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = PrivateAttr(default=None)
    _retired_usage: Usage = PrivateAttr(default_factory=Usage)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Built here rather than in a validator so that configuration problems surface as the
        # core's ConfigurationError, not wrapped in a pydantic ValidationError.
        settings = resolve_settings(
            api_key=self.api_key.get_secret_value() if self.api_key is not None else None,
            base_url=self.base_url,
            model=self.model,
            dialect=self.dialect,
            dimension=self.dimension,
        )
        # Show what is in use, whichever of argument, environment or default it came from.
        self.api_key = SecretStr(settings.api_key.get())
        self.base_url = settings.base_url
        self.model = settings.model
        self.dialect = settings.dialect
        self._client = Client(
            settings.api_key.get(),
            http_client=self.http_client,
            **self._client_options(),
        )
        if self.http_async_client is not None:
            self._async_client = self._new_async_client()

    # --- LangChain serialization: the key is replaced by the name of its variable ---

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Yes: ``dumpd``/``dumps`` record the fields, with the key as a secret reference."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """The public import path, ``tongyi_vision.langchain``."""
        return ["tongyi_vision", "langchain"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The key field and the environment variable it is revived from."""
        env = "DASHSCOPE_API_KEY" if self.dialect == "dashscope" else "EMPIRIOLABS_API_KEY"
        return {"api_key": env}

    # --- text and media references ---

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each string: text as text, media references as the image or video they name."""
        if not texts:
            return []
        return self._client.embed(self._parts(texts)).vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one query string (a media reference makes an image or video query)."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`; its requests run concurrently on the event loop."""
        if not texts:
            return []
        parts = self._parts(texts)
        return (await self._running_async_client().embed(parts)).vectors

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed_documents([text]))[0]

    # --- images and videos ---

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images given as paths, ``file://``/``http(s)``/``data:`` URIs or raw base64.

        This is the method Chroma's ``add_images`` (file paths) and
        ``similarity_search_by_image`` call.
        """
        if not uris:
            return []
        return self._client.embed(self._images(uris)).vectors

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image`."""
        if not uris:
            return []
        images = self._images(uris)
        return (await self._running_async_client().embed(images)).vectors

    def embed_video(self, uris: list[str]) -> list[list[float]]:
        """Embed videos given as ``http(s)`` URLs, ``data:video/...`` URIs or local files."""
        if not uris:
            return []
        return self._client.embed(self._videos(uris)).vectors

    async def aembed_video(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_video`."""
        if not uris:
            return []
        videos = self._videos(uris)
        return (await self._running_async_client().embed(videos)).vectors

    # --- lifetime and bookkeeping ---

    @property
    def usage(self) -> Usage:
        """Tokens, requests and cost summed over every call of this object."""
        with self._lock:
            total = self._retired_usage + self._client.usage
            if self._async_client is not None:
                total = total + self._async_client.usage
        return total

    def close(self) -> None:
        """Close the sync connections this object opened (not an ``http_client`` passed in)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close every connection this object opened; await it on the loop that used it."""
        self._client.close()
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_client
            bound = self._async_loop() if self._async_loop is not None else None
            if client is not None and self.http_async_client is None:
                self._retired_usage = self._retired_usage + client.usage
                self._async_client = None
                self._async_loop = None
        # Connections opened on another (most often already closed) loop cannot be closed here.
        if client is not None and (self.http_async_client is not None or bound is loop):
            await client.aclose()

    def __enter__(self) -> TongyiVisionEmbeddings:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> TongyiVisionEmbeddings:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[Any, Any]:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled (it holds connections and the API key); "
            "serialize it with langchain_core.load.dumps, or create one in the other process"
        )

    # --- private ---

    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "model": self.model,
            "dialect": self.dialect,
            "dimension": self.dimension,
            "timeout": httpx.Timeout(self.timeout),
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
            "auto_fit": self.auto_fit,
            "default_headers": self.default_headers,
            "show_progress": self.show_progress_bar,
        }

    def _new_async_client(self) -> AsyncClient:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return AsyncClient(key, http_client=self.http_async_client, **self._client_options())

    def _running_async_client(self) -> AsyncClient:
        """The async client for the running event loop.

        Pooled connections belong to the loop that opened them, so a second
        ``asyncio.run`` gets a client of its own rather than a pool whose
        sockets are bound to a closed loop.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_client
            if self.http_async_client is not None and client is not None:
                return client  # the caller's HTTP client: the caller picks its loop
            bound = self._async_loop() if self._async_loop is not None else None
            if client is None or bound is not loop:
                if client is not None:
                    self._retired_usage = self._retired_usage + client.usage
                client = self._new_async_client()
                self._async_client = client
                self._async_loop = weakref.ref(loop)
            return client

    def _parts(self, texts: Sequence[str]) -> list[Part]:
        if not self.embed_media_references:
            return list(texts)
        parts: list[Part] = []
        for text in texts:
            media = media_part(text, auto_fit=self.auto_fit) if isinstance(text, str) else None
            parts.append(media if media is not None else text)
        return parts

    def _images(self, uris: Sequence[str]) -> list[Part]:
        return [self._image(uri) for uri in uris]

    def _image(self, uri: str | os.PathLike[str]) -> Image:
        if isinstance(uri, str) and not uri.startswith(_URI_PREFIXES) and not os.path.exists(uri):
            data = _decode_raw_base64(uri)
            if data is not None:
                return Image(data, auto_fit=self.auto_fit)
        # A path that does not exist is left to the core, whose error names it.
        return Image(uri, auto_fit=self.auto_fit)

    def _videos(self, uris: Sequence[str]) -> list[Part]:
        return [Video(uri) for uri in uris]


def _decode_raw_base64(value: str) -> bytes | None:
    """The image bytes of a base64 string without a ``data:`` prefix, else ``None``."""
    if not _RAW_BASE64.fullmatch(value):
        return None
    try:
        data = base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if sniff_image_format(data[:64]) is not None else None
