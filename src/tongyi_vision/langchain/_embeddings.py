"""``TongyiVisionEmbeddings``: LangChain's ``Embeddings`` over the core clients."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any, Literal

import httpx
from langchain_core.embeddings import Embeddings
from langchain_core.load.serializable import Serializable
from langchain_core.utils import from_env
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, SecretStr

from ..engine.client import AsyncClient, Client, ClientPair
from ..engine.pieces import LongText
from ..media.fused import Fused
from ..media.parts import Part
from ..media.references import (
    FusedInput,
    fused_groups,
    image_input,
    query_part,
    strings,
    text_or_media,
    video_input,
)
from ..wire.limits import FLASH


def _dialect_from_env() -> Any:
    # Checked with the other settings by the core, which names the variable when it is wrong.
    return os.environ.get("TONGYI_VISION_DIALECT") or None


class TongyiVisionEmbeddings(ClientPair, Serializable, Embeddings):
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
    constructed. Batching, concurrency, retries and event loops are the core
    clients'.

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
    dimension: int | None = Field(
        default=None, frozen=True, validation_alias=AliasChoices("dimension", "dimensions")
    )
    """Vector size; only the ``dashscope`` dialect can change it from the model's default.
    Also accepted as ``dimensions`` (OpenAI's name). Read-only once built: it then holds the
    size in use (768 for flash, 1152 for plus, or the size asked for), to create a store's
    collection with."""
    region: str | None = None
    """``"singapore"`` or ``"beijing"``: the native service root of that region (``dashscope``
    dialect; keys are bound to a region). An explicit ``base_url`` wins over it."""
    workspace: str | None = None
    """A Model Studio workspace id (``"ws-..."``): its Singapore domain is the service root
    (``dashscope`` dialect). An explicit ``base_url`` wins over it."""
    res_level: int | None = None
    """Image resolution tier 0-3 sent with every image (dated snapshots): it changes the
    tokens an image costs. ``None`` leaves the service's default (1)."""
    fps: float | None = None
    """The share of a video's frames the service samples, a ratio in [0, 1] (not frames per
    second), for videos given by URL."""
    max_video_frames: int | None = None
    """The most frames the service samples from a video given by URL, 1-64 (dated
    snapshots)."""
    instruct: str | None = None
    """A task instruction in English sent with queries (:meth:`embed_query`), never with
    documents, such as ``"Find images that match the description"`` (dated snapshots)."""
    max_retries: int = 3
    """Retries (not attempts) of a request after a rate limit, timeout or server error."""
    timeout: float | None = Field(
        default=60.0, validation_alias=AliasChoices("timeout", "request_timeout")
    )
    """Seconds to wait for a request; ``None`` waits forever. Also accepted as
    ``request_timeout``."""
    max_concurrency: int = 8
    """Requests in flight at once, in threads (sync) or tasks (async)."""
    show_progress_bar: bool = False
    """Show a tqdm progress bar over the parts of each call."""
    default_headers: dict[str, str] | None = Field(default=None, exclude=True, repr=False)
    """Extra HTTP headers sent with every request; never shown in a repr nor serialized (a
    proxy's token is as secret as the key)."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    """An ``httpx.Client`` to send the sync requests with (proxies, certificates...)."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """An ``httpx.AsyncClient`` for the async methods; the caller picks its event loop."""
    embed_media_references: bool = True
    """Embed ``file://`` and ``data:`` URIs of images and videos as media, not as text."""
    read_query_files: bool = False
    """Let :meth:`embed_query` read the local file a ``file://`` URI in the query names (an
    image or video query through the text API). Off by default: query text often comes from
    users, and reading it as a path would let them make the process read, probe or send
    local files. ``data:`` URIs in queries are media either way, and documents (from the
    loaders) always read their files; :meth:`embed_image` is the explicit way to query by a
    picture."""
    auto_fit: bool = True
    """Re-encode local images that break the service's limits (size, format) with Pillow."""
    cache: Any = Field(default=None, exclude=True)
    """An embedding cache: a path (an SQLite file), a ``tongyi_vision.EmbeddingCache``, or
    any LangChain ``ByteStore`` (``LocalFileStore``, Redis...). Content embedded before, by
    this model at this size, is not sent again, images and video included (keyed by their
    bytes, not their URI); ``usage.cached`` counts what it served. Not serialized."""
    rate_limit: Any = Field(default=None, exclude=True)
    """A ``tongyi_vision.RateLimit`` (the account's requests and tokens per minute), shared
    with every client given the same object: requests go out evenly within it. Not
    serialized; shared, not copied, by ``copy.deepcopy``."""
    max_rate_limit_wait: float = 300.0
    """Seconds a request may wait out 429s before they count against ``max_retries``."""
    long_text: LongText = "split"
    """A text over the 1,024-token limit: ``"split"`` embeds it in pieces and returns their
    length-weighted mean (what LangChain's default splitters need: their chunks are often
    over the limit), ``"truncate"`` embeds its longest start within the limit, ``"error"``
    raises ``TextTooLongError``."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        protected_namespaces=(),
        arbitrary_types_allowed=True,
    )

    _client: Client = PrivateAttr()
    _async_client: AsyncClient = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A region or a workspace wins over TONGYI_VISION_BASE_URL (the field's default), not
        # over a base_url given here: the core reads the variable itself when none is given.
        regional = self.region is not None or self.workspace is not None
        given_url = "base_url" in self.model_fields_set or not regional
        # Built here rather than in a validator so that configuration problems surface as the
        # core's ConfigurationError, not wrapped in a pydantic ValidationError.
        self._client = Client(
            self.api_key.get_secret_value() if self.api_key is not None else None,
            base_url=self.base_url if given_url else None,
            model=self.model,
            dialect=self.dialect,
            dimension=self.dimension,
            region=self.region,
            workspace=self.workspace,
            res_level=self.res_level,
            fps=self.fps,
            max_video_frames=self.max_video_frames,
            instruct=self.instruct,
            timeout=httpx.Timeout(self.timeout),
            max_retries=self.max_retries,
            max_concurrency=self.max_concurrency,
            auto_fit=self.auto_fit,
            long_text=self.long_text,
            cache=self.cache,
            rate_limit=self.rate_limit,
            max_rate_limit_wait=self.max_rate_limit_wait,
            default_headers=self.default_headers,
            show_progress=self.show_progress_bar,
            http_client=self.http_client,
        )
        self._async_client = self._client.async_client(http_client=self.http_async_client)
        # Show what is in use, whichever of argument, environment or default it came from.
        settings = self._client.settings
        self.api_key = SecretStr(settings.api_key.get())
        self.base_url, self.model, self.dialect = (
            settings.base_url,
            settings.model,
            settings.dialect,
        )
        self.__dict__["dimension"] = self._client.dimension

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> TongyiVisionEmbeddings:
        """A copy with its own connections and copies of its settings (``http_client``,
        ``http_async_client``, ``cache`` and ``rate_limit`` are shared: connections cannot be
        copied, and a copy spends the same budget)."""
        shared = {"http_client", "http_async_client", "cache", "rate_limit"}
        fields = {
            name: getattr(self, name)
            if name in shared
            else copy.deepcopy(getattr(self, name), memo)
            for name in type(self).model_fields
        }
        return type(self)(**fields)

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
        return {"api_key": self._client.settings.key_env}

    # --- text and media references ---

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each string: text as text, media references as the image or video they name."""
        return self._client.embed(self._parts(texts, "embed_documents")).vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one query string: a ``data:`` URI makes an image or video query, and so does
        a ``file://`` URI with ``read_query_files=True``; anything else is text, sent with
        ``instruct`` when it is set (documents never carry it)."""
        query = self._query(text)
        if isinstance(query, str):
            return self._client.embed_query(query)
        return self._client.embed([query]).vectors[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`; its requests run concurrently on the event loop."""
        return (await self._async_client.embed(self._parts(texts, "embed_documents"))).vectors

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        query = self._query(text)
        if isinstance(query, str):
            return await self._async_client.embed_query(query)
        return (await self._async_client.embed([query])).vectors[0]

    # --- fused groups ---

    def embed_fused(self, groups: Sequence[Sequence[FusedInput] | Fused]) -> list[list[float]]:
        """Embed each group of parts into ONE fused vector: one text, up to eight images and
        at most one video (by URL) per group (dated snapshots, ``dialect="dashscope"``).

        A member is a string (text, or a media reference as in :meth:`embed_documents`),
        a content block, a local image path, a ``BytesIO`` or a core part. Other models
        and the ``openai`` dialect refuse fused groups with an ``InputError`` before
        anything is sent.

        >>> embeddings.embed_fused([["a red bicycle", {"type": "image", "url": url}]])
        """
        return self._client.embed(self._fused(groups)).vectors

    async def aembed_fused(
        self, groups: Sequence[Sequence[FusedInput] | Fused]
    ) -> list[list[float]]:
        """Async :meth:`embed_fused`."""
        return (await self._async_client.embed(self._fused(groups))).vectors

    # --- images and videos ---

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images given as paths, ``file://``/``http(s)``/``data:`` URIs or raw base64.

        This is the method Chroma's ``add_images`` (file paths) and
        ``similarity_search_by_image`` call.
        """
        return self._client.embed(self._images(uris)).vectors

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image`."""
        return (await self._async_client.embed(self._images(uris))).vectors

    def embed_video(self, uris: list[str]) -> list[list[float]]:
        """Embed videos given as ``http(s)`` URLs, ``data:video/...`` URIs or local files."""
        return self._client.embed(self._videos(uris)).vectors

    async def aembed_video(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_video`."""
        return (await self._async_client.embed(self._videos(uris))).vectors

    def __getstate__(self) -> dict[Any, Any]:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled (it holds connections and the API key); "
            "serialize it with langchain_core.load.dumps, or create one in the other process"
        )

    def _parts(self, texts: object, method: str) -> list[Part]:
        listed = strings(texts, method)
        if not self.embed_media_references:
            return list(listed)
        return [text_or_media(text, auto_fit=self.auto_fit) for text in listed]

    def _query(self, text: str) -> Part:
        (query,) = strings([text], "embed_query")
        if not self.embed_media_references:
            return query
        return query_part(query, auto_fit=self.auto_fit, read_files=self.read_query_files)

    def _fused(self, groups: object) -> list[Part]:
        return list(fused_groups(groups, auto_fit=self.auto_fit, method="embed_fused"))

    def _images(self, uris: object) -> list[Part]:
        return [image_input(uri, auto_fit=self.auto_fit) for uri in strings(uris, "embed_image")]

    def _videos(self, uris: object) -> list[Part]:
        return [video_input(uri) for uri in strings(uris, "embed_video")]
