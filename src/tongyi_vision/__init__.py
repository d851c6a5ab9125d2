"""tongyi-vision: text, image and video embeddings with Alibaba's tongyi-embedding-vision models.

>>> from tongyi_vision import Client, Image
>>> with Client() as client:
...     result = client.embed(["a red bicycle", Image("bike.jpg")])

On the dated snapshots, a :class:`Fused` part embeds a text and images (and a video)
into one vector, and ``embed_query(text, instruct=...)`` sends a task instruction with
a query; see ``docs/models.md``.

LangChain and LlamaIndex adapters live in :mod:`tongyi_vision.langchain` and
:mod:`tongyi_vision.llama_index`; a local emulator of the API in
:mod:`tongyi_vision.emulator`; sample media for demos and tests in
:mod:`tongyi_vision.samples`.
"""

from ._public import show_as_public
from ._version import __version__
from .engine.cache import CacheStore, CacheWarning, EmbeddingCache, RedisStore, SQLiteStore
from .engine.client import AsyncClient, Client
from .engine.config import UnknownModelWarning
from .engine.pieces import LongText
from .engine.ratelimit import RateLimit
from .engine.scheduler import OnInvalid
from .media.catalogue import MediaFile, OnError, SkippedFile, scan
from .media.clips import VideoClip, clip_bounds, iter_clips
from .media.decoding import VideoInfo, probe_video
from .media.fused import Fused
from .media.image import Image, MultiImage
from .media.parts import Part
from .media.references import media_part
from .media.sources import file_uri
from .media.video import Video, VideoStrategy
from .wire.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ContentModerationError,
    CorruptMediaError,
    DimensionMismatchError,
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    MediaTooLargeError,
    MissingDependencyError,
    NotFoundError,
    PartialResult,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServerError,
    TextTooLongError,
    TongyiVisionError,
    TooManyImagesError,
    UnsupportedMediaError,
)
from .wire.limits import (
    FLASH,
    FLASH_SNAPSHOT,
    MODELS,
    PLUS,
    PLUS_SNAPSHOT,
    ModelSpec,
    estimate_text_tokens,
)
from .wire.results import EmbedResult, ProgressEvent, Usage

__all__ = [
    "FLASH",
    "FLASH_SNAPSHOT",
    "MODELS",
    "PLUS",
    "PLUS_SNAPSHOT",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "CacheStore",
    "CacheWarning",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "ContentModerationError",
    "CorruptMediaError",
    "DimensionMismatchError",
    "EmbedResult",
    "EmbeddingCache",
    "EmptyInputError",
    "Fused",
    "Image",
    "InputError",
    "LongText",
    "MediaFile",
    "MediaNotFoundError",
    "MediaTooLargeError",
    "MissingDependencyError",
    "ModelSpec",
    "MultiImage",
    "NotFoundError",
    "OnError",
    "OnInvalid",
    "Part",
    "PartialResult",
    "PermissionDeniedError",
    "ProgressEvent",
    "RateLimit",
    "RateLimitError",
    "RedisStore",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "SQLiteStore",
    "ServerError",
    "SkippedFile",
    "TextTooLongError",
    "TongyiVisionError",
    "TooManyImagesError",
    "UnknownModelWarning",
    "UnsupportedMediaError",
    "Usage",
    "Video",
    "VideoClip",
    "VideoInfo",
    "VideoStrategy",
    "__version__",
    "clip_bounds",
    "estimate_text_tokens",
    "file_uri",
    "iter_clips",
    "media_part",
    "probe_video",
    "scan",
]

show_as_public(globals())
