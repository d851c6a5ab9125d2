"""``TongyiVisionEmbedding``: LlamaIndex's ``MultiModalEmbedding`` on the core clients, which
pack, send, retry and keep async connections on the right event loop; this holds fields and
framework plumbing only."""

from __future__ import annotations

import base64
import binascii
import copy
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from llama_index.core.schema import BaseNode, ImageDocument, ImageNode, ImageType, MetadataMode

from ..engine.client import AsyncClient, Client, ClientPair
from ..engine.pieces import LongText
from ..engine.progress import ProgressBar
from ..media.fused import Fused
from ..media.parts import Part
from ..media.references import (
    FusedInput,
    captioned_part,
    fused_groups,
    image_input,
    query_part,
    text_or_media,
    video_input,
)
from ..media.video import Video
from ..wire.errors import UnsupportedMediaError
from ..wire.limits import FLASH

dispatcher = get_dispatcher(__name__)

#: What the video methods take: an http(s) URL, a ``data:video/...`` URI, a local path,
#: a video content block.
VideoInput = str | os.PathLike[str] | Video | Mapping[str, Any]

_NOT_PICKLED = frozenset({"api_key", "default_headers", "callback_manager"})


class TongyiVisionEmbedding(ClientPair, MultiModalEmbedding):
    """Text, image and video embeddings from ``tongyi-embedding-vision-flash`` / ``-plus``.

    Every modality lands in one vector space, so pass the same instance as both
    ``embed_model`` and ``image_embed_model`` of a ``MultiModalVectorStoreIndex``:
    text queries then find images, and images find texts.

    >>> embedding = TongyiVisionEmbedding()       # key from EMPIRIOLABS_API_KEY
    >>> index = MultiModalVectorStoreIndex.from_documents(
    ...     documents, embed_model=embedding, image_embed_model=embedding
    ... )

    Images are a local path, an http(s) URL (the service downloads it), a
    ``data:image/...`` URI, or a ``BytesIO``; a file that is a video is
    embedded as that video. Settings are resolved once, by the core client;
    the key and ``default_headers`` are never serialised (a copy rebuilt with
    ``from_dict`` or unpickled reads the key from the environment again). Each
    batch method is ONE call of the core client, whatever ``embed_batch_size``
    says; ``num_workers`` is not used. See ``docs/llama_index.md``.
    """

    model_name: str = Field(default=FLASH, description="flash (768 dimensions) or plus (1152).")
    api_key: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="API key; never serialised."
    )
    base_url: str | None = Field(default=None, description="Service root; the dialect's own.")
    dialect: Literal["openai", "dashscope"] | None = Field(
        default=None, description="'openai' (EmpirioLabs gateway, default) or 'dashscope'."
    )
    dimension: int | None = Field(
        default=None,
        frozen=True,
        description="Vector size: as given (dashscope only), else the model's own; read-only.",
    )
    region: str | None = Field(
        default=None,
        description="'singapore' or 'beijing': that region's native service root (dashscope "
        "dialect; keys are bound to a region). An explicit base_url wins.",
    )
    workspace: str | None = Field(
        default=None,
        description="A Model Studio workspace id ('ws-...'): its Singapore domain is the "
        "service root (dashscope dialect). An explicit base_url wins.",
    )
    res_level: int | None = Field(
        default=None,
        description="Image resolution tier 0-3 sent with every image (dated snapshots); it "
        "changes the tokens an image costs. None: the service's default (1).",
    )
    fps: float | None = Field(
        default=None,
        description="Share of a video's frames the service samples, a ratio in [0, 1] (not "
        "frames per second), for videos given by URL.",
    )
    max_video_frames: int | None = Field(
        default=None,
        description="Most frames the service samples from a video given by URL, 1-64 (dated "
        "snapshots).",
    )
    instruct: str | None = Field(
        default=None,
        description="A task instruction in English sent with queries (get_query_embedding, "
        "so every retriever), never with documents (dated snapshots).",
    )
    max_retries: int = Field(default=3, ge=0, description="Retries of a failed request.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds per request.")
    max_concurrency: int = Field(default=8, ge=1, description="Requests in flight at most.")
    auto_fit: bool = Field(default=True, description="Re-encode images that break the limits.")
    long_text: LongText = Field(
        default="split",
        description="A text over 1,024 tokens: 'split' (embed pieces, average), 'truncate', "
        "or 'error'.",
    )
    cache: Any = Field(
        default=None,
        exclude=True,
        description="An embedding cache: a path (SQLite file), an EmbeddingCache, or a store "
        "with mget/mset. Content embedded before is not sent again; not serialised.",
    )
    rate_limit: Any = Field(
        default=None,
        exclude=True,
        description="A tongyi_vision.RateLimit (requests and tokens per minute), shared with "
        "every client given the same object; not serialised, shared by deepcopy.",
    )
    max_rate_limit_wait: float = Field(
        default=300.0,
        ge=0,
        description="Seconds a request may wait out 429s before they count as retries.",
    )
    embed_media_references: bool = Field(
        default=True,
        description="Embed texts that are file:// or data: URIs of media (the content of "
        "TongyiImageReader documents) as that image or video.",
    )
    read_query_files: bool = Field(
        default=False,
        description="Let a query that is a file:// URI read that file (queries often come "
        "from users: off by default, and such a query is refused).",
    )
    default_headers: dict[str, str] | None = Field(
        default=None, exclude=True, repr=False, description="Extra headers; never serialised."
    )

    _client: Client = PrivateAttr()
    _async_client: AsyncClient = PrivateAttr()
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        model_name: str | None = None,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        dialect: str | None = None,
        dimension: int | None = None,
        dimensions: int | None = None,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        """Check the fields, build the core clients (which resolve the settings once: argument,
        environment, default), and show what they resolved.

        ``http_client`` / ``http_async_client`` replace the connections the
        clients would open (for proxies, custom TLS, or tests); they are used as
        given and not closed by :meth:`close`. ``dimensions`` is accepted as another
        name of ``dimension`` (OpenAI's).
        """
        if dimensions is not None:
            if dimension is not None and dimension != dimensions:
                raise ValueError("dimension and dimensions disagree; give one of them")
            dimension = dimensions
        fields: dict[str, Any] = {
            "model_name": model_name or FLASH,
            "api_key": SecretStr(api_key) if isinstance(api_key, str) else api_key,
            "base_url": base_url,
            "dialect": dialect,
            "dimension": dimension,
        }
        super().__init__(**fields, **kwargs)
        self._given = {"http_client": http_client, "http_async_client": http_async_client}
        self._client = Client(
            self.api_key.get_secret_value() if self.api_key is not None else None,
            base_url=base_url,
            model=model_name,
            dialect=dialect,
            dimension=dimension,
            region=self.region,
            workspace=self.workspace,
            res_level=self.res_level,
            fps=self.fps,
            max_video_frames=self.max_video_frames,
            instruct=self.instruct,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_concurrency=self.max_concurrency,
            auto_fit=self.auto_fit,
            long_text=self.long_text,
            cache=self.cache,
            rate_limit=self.rate_limit,
            max_rate_limit_wait=self.max_rate_limit_wait,
            default_headers=self.default_headers,
            http_client=http_client,
        )
        self._async_client = self._client.async_client(http_client=http_async_client)
        settings = self._client.settings
        self.api_key = SecretStr(settings.api_key.get())
        self.model_name, self.base_url, self.dialect = (
            settings.model,
            settings.base_url,
            settings.dialect,
        )
        # The size in use, whether given or the model's own: for creating a store's collection.
        self.__dict__["dimension"] = self._client.dimension

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> TongyiVisionEmbedding:
        """A copy with its own connections and copies of its settings (an ``http_client``
        passed in, the cache, the rate limit and the callback manager are shared)."""
        fields = {
            name: getattr(self, name)
            if name in ("cache", "rate_limit", "callback_manager")
            else copy.deepcopy(getattr(self, name), memo)
            for name in type(self).model_fields
            if name not in ("api_key", "model_name")
        }
        api_key = self.api_key.get_secret_value() if self.api_key is not None else None
        return type(self)(self.model_name, api_key=api_key, **fields, **self._given)

    @classmethod
    def class_name(cls) -> str:
        return "TongyiVisionEmbedding"

    @property
    def client(self) -> Client:
        """The core client behind the sync methods (for calls LlamaIndex has no method for)."""
        return self._client

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation see of this model: no key, no headers."""
        return {
            **super().to_payload(),
            "dialect": self.dialect,
            "dimension": self._client.dimension,
        }

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

    # --- single inputs: LlamaIndex's base class wraps these in its events ---

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._client.embed(self._texts(texts)).vectors

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return (await self._async_client.embed(self._texts(texts))).vectors

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_query_embedding(self, query: str) -> Embedding:
        # No prefix in the text: a text query carries ``instruct`` as a parameter, if set.
        # Every retriever comes here, MultiModalVectorStoreIndex's text_to_image_retrieve
        # too (through get_agg_embedding_from_queries and get_query_embedding).
        part = self._query(query)
        if isinstance(part, str):
            return self._client.embed_query(part)
        return self._client.embed([part]).vectors[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        part = self._query(query)
        if isinstance(part, str):
            return await self._async_client.embed_query(part)
        return (await self._async_client.embed([part])).vectors[0]

    def _texts(self, texts: Sequence[str]) -> list[Part]:
        """Texts as parts: a media reference (the content of a reader's image document) is
        that image or video, and a captioned image reference the fused pair, unless
        ``embed_media_references`` is off."""
        if not self.embed_media_references:
            return list(texts)
        return [text_or_media(text, auto_fit=self.auto_fit) for text in texts]

    def _query(self, query: str) -> Part:
        if not self.embed_media_references:
            return query
        return query_part(query, auto_fit=self.auto_fit, read_files=self.read_query_files)

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._client.embed([self._image(i) for i in img_file_paths]).vectors

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        parts = [self._image(i) for i in img_file_paths]
        return (await self._async_client.embed(parts)).vectors

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aget_image_embeddings([img_file_path]))[0]

    def _image(self, image: ImageType | os.PathLike[str] | bytes) -> Part:
        return image_input(image, auto_fit=self.auto_fit)

    # --- fused groups: one vector for a text and images (and a video) together ---

    def get_fused_embedding(self, parts: Sequence[FusedInput] | Fused) -> Embedding:
        """Embed one group of parts into ONE fused vector: one text, up to eight images and
        at most one video (by URL) (dated snapshots, ``dialect="dashscope"``).

        A member is a string (text, or a media reference as the text methods take it), a
        content block, a local image path, image bytes or a ``BytesIO``, or a core part.
        Other models and the ``openai`` dialect refuse it with an ``InputError`` before
        anything is sent.

        >>> embedding.get_fused_embedding(["a red bicycle", Path("bike.jpg")])
        """
        return self.get_fused_embedding_batch([parts])[0]

    async def aget_fused_embedding(self, parts: Sequence[FusedInput] | Fused) -> Embedding:
        """Async :meth:`get_fused_embedding`."""
        return (await self.aget_fused_embedding_batch([parts]))[0]

    def get_fused_embedding_batch(
        self, groups: Sequence[Sequence[FusedInput] | Fused], show_progress: bool = False
    ) -> list[Embedding]:
        """One fused vector per group, in one core call."""
        parts = self._fused(groups)
        return self._media_batch(parts, [_described(p) for p in parts], show_progress)

    async def aget_fused_embedding_batch(
        self, groups: Sequence[Sequence[FusedInput] | Fused], show_progress: bool = False
    ) -> list[Embedding]:
        """Async :meth:`get_fused_embedding_batch`."""
        parts = self._fused(groups)
        return await self._amedia_batch(parts, [_described(p) for p in parts], show_progress)

    def _fused(self, groups: object) -> list[Part]:
        return list(
            fused_groups(groups, auto_fit=self.auto_fit, method="get_fused_embedding_batch")
        )

    # --- batches: one core call each, inside LlamaIndex's callback and instrumentation events

    @contextmanager
    def _batch(self, chunks: Sequence[Any], show_progress: bool, desc: str) -> Iterator[_Batch]:
        model_dict = self.to_payload()
        shown = [_shown(c) for c in chunks]
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        with (
            self.callback_manager.event(
                CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
            ) as event,
            ProgressBar(len(chunks), enabled=show_progress, desc=desc, extra="llama-index") as bar,
        ):
            batch = _Batch(bar)
            yield batch
            event.on_end(
                payload={EventPayload.CHUNKS: shown, EventPayload.EMBEDDINGS: batch.vectors}
            )
        dispatcher.event(EmbeddingEndEvent(chunks=shown, embeddings=batch.vectors))

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed texts in one core call (LlamaIndex's ``embeddings_cache`` is honoured)."""
        with self._batch(texts, show_progress, "Generating embeddings") as batch:
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            cache = self.embeddings_cache is not None
            batch.vectors = (
                self._get_text_embeddings_cached(texts)
                if cache
                else self._client.embed(self._texts(texts), progress=batch.progress).vectors
            )
        return batch.vectors

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async :meth:`get_text_embedding_batch`: one core call, requests run concurrently."""
        with self._batch(texts, show_progress, "Generating embeddings") as batch:
            if self.rate_limiter is not None:
                await self.rate_limiter.async_acquire()
            cache = self.embeddings_cache is not None
            batch.vectors = (
                await self._aget_text_embeddings_cached(texts)
                if cache
                else (
                    await self._async_client.embed(self._texts(texts), progress=batch.progress)
                ).vectors
            )
        return batch.vectors

    def get_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed images in one core call."""
        return self._media_batch(
            [self._image(i) for i in img_file_paths], img_file_paths, show_progress
        )

    async def aget_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Async :meth:`get_image_embedding_batch`."""
        parts = [self._image(i) for i in img_file_paths]
        return await self._amedia_batch(parts, img_file_paths, show_progress)

    def get_video_embedding(self, video: VideoInput) -> Embedding:
        """Embed one video: an http(s) URL, a ``data:video/...`` URI or a local path."""
        return self.get_video_embedding_batch([video])[0]

    async def aget_video_embedding(self, video: VideoInput) -> Embedding:
        """Embed one video; see :meth:`get_video_embedding`."""
        return (await self.aget_video_embedding_batch([video]))[0]

    def get_video_embedding_batch(
        self, videos: Sequence[VideoInput], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed videos, one vector each, in one core call."""
        return self._media_batch([video_input(v) for v in videos], videos, show_progress)

    async def aget_video_embedding_batch(
        self, videos: Sequence[VideoInput], show_progress: bool = False
    ) -> list[Embedding]:
        """Async :meth:`get_video_embedding_batch`."""
        return await self._amedia_batch([video_input(v) for v in videos], videos, show_progress)

    def _media_batch(self, parts: list[Part], chunks: Sequence[Any], show: bool) -> list[Embedding]:
        with self._batch(chunks, show, "Generating media embeddings") as batch:
            batch.vectors = self._client.embed(parts, progress=batch.progress).vectors
        return batch.vectors

    async def _amedia_batch(
        self, parts: list[Part], chunks: Sequence[Any], show: bool
    ) -> list[Embedding]:
        with self._batch(chunks, show, "Generating media embeddings") as batch:
            result = await self._async_client.embed(parts, progress=batch.progress)
            batch.vectors = result.vectors
        return batch.vectors

    # --- as a transformation (IngestionPipeline) ---
    #
    # BaseEmbedding embeds every node's text. For an image node that would embed its
    # metadata ("file_name: cat.png"), and for a clip of TongyiVideoReader it would
    # replace the clip's vector with that of its metadata: image nodes get their image
    # embedded instead, clips keep their vector (or are embedded again from their
    # clip_uri, never from text).

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes in an ``IngestionPipeline``: texts as text, image nodes as images,
        video clips from their clip reference; a clip that has its vector keeps it."""
        plan, show = self._plan(nodes), bool(kwargs.get("show_progress"))
        vectors = self.get_text_embedding_batch([t for _, t in plan.texts], show)
        media = [p for _, p in plan.media]
        vectors += self._media_batch(media, media, show) if media else []
        return _attach(nodes, plan.embedded, vectors)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async :meth:`__call__`."""
        plan, show = self._plan(nodes), bool(kwargs.get("show_progress"))
        vectors = await self.aget_text_embedding_batch([t for _, t in plan.texts], show)
        media = [p for _, p in plan.media]
        vectors += await self._amedia_batch(media, media, show) if media else []
        return _attach(nodes, plan.embedded, vectors)

    def _plan(self, nodes: Sequence[BaseNode]) -> _NodePlan:
        plan = _NodePlan()
        for node in nodes:
            clip = node.metadata.get("clip_uri")
            if isinstance(clip, str) and clip:
                if _has_vector(node, self._client.dimension):
                    continue  # a TongyiVideoReader clip: its vector is the clip's own
                plan.media.append((node, text_or_media(clip, auto_fit=self.auto_fit)))
                continue
            image = _node_image(node)
            if image is None:
                plan.texts.append((node, _text_of(node)))
                continue
            # a captioned reader image: its embed content is the fused caption and image
            captioned = captioned_part(_text_of(node), auto_fit=self.auto_fit)
            plan.media.append((node, self._image(image) if captioned is None else captioned))
        return plan


class _Batch:
    """One batch method's call: its progress bar's callback, and the vectors it got."""

    def __init__(self, bar: ProgressBar) -> None:
        self.progress = bar.callback
        self.vectors: list[Embedding] = []


def _shown(chunk: Any) -> str:
    # Callback payloads go to user handlers and tracing: strings, not image bytes.
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, io.BytesIO):
        return f"<{len(chunk.getvalue()):,} bytes>"
    return repr(chunk)


def _described(part: Part) -> str:
    # what callbacks see of a fused group: its kinds, never its data
    members = part.parts if isinstance(part, Fused) else [part]
    kinds = ["text" if isinstance(m, str) else type(m).__name__ for m in members]
    return f"<fused: {', '.join(kinds)}>"


def _text_of(node: BaseNode) -> str:
    return node.get_content(metadata_mode=MetadataMode.EMBED)


def _node_image(node: BaseNode) -> ImageType | None:
    """What an image node shows, in a form the service takes (a URL is passed on for the
    service to download); ``None`` for a text node."""
    if not isinstance(node, (ImageNode, ImageDocument)):
        return None
    if node.image_path or node.image_url:
        return node.image_path or node.image_url
    if not node.image:
        return None
    try:
        return io.BytesIO(base64.b64decode(node.image, validate=True))
    except (binascii.Error, ValueError):
        raise UnsupportedMediaError(
            "holds an image that is not valid base64; set image, image_path or image_url right",
            part=f"node {node.node_id!r}",
        ) from None


class _NodePlan:
    """What ``__call__`` does with each node: embed its text, or a medium it stands for."""

    def __init__(self) -> None:
        self.texts: list[tuple[BaseNode, str]] = []
        self.media: list[tuple[BaseNode, Part]] = []

    @property
    def embedded(self) -> list[BaseNode]:
        """The nodes that get a vector, in the order of the vectors: texts, then media."""
        return [n for n, _ in self.texts] + [n for n, _ in self.media]


def _has_vector(node: BaseNode, dimension: int | None) -> bool:
    vector = node.embedding
    return bool(vector) and (dimension is None or len(vector or []) == dimension)


def _attach(
    nodes: Sequence[BaseNode], embedded: list[BaseNode], vectors: list[Embedding]
) -> Sequence[BaseNode]:
    for node, vector in zip(embedded, vectors, strict=True):
        node.embedding = vector
    return nodes
