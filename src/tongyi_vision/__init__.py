"""tongyi-vision: text, image and video embeddings with Alibaba's tongyi-embedding-vision models.

>>> from tongyi_vision import Client, Image
>>> with Client() as client:
...     result = client.embed(["a red bicycle", Image("bike.jpg")])

LangChain and LlamaIndex adapters live in :mod:`tongyi_vision.langchain` and
:mod:`tongyi_vision.llama_index`; a local emulator of the API in
:mod:`tongyi_vision.emulator`.
"""

from ._client import AsyncClient, Client, __version__
from ._clips import VideoClip, VideoInfo, clip_bounds, iter_clips, probe_video
from ._exceptions import (
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
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    MediaTooLargeError,
    MissingDependencyError,
    NotFoundError,
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
from ._limits import FLASH, MODELS, PLUS, ModelSpec, estimate_text_tokens
from ._parts import Image, MultiImage, Part
from ._references import file_uri, media_part
from ._types import EmbedResult, PartialResult, ProgressEvent, Usage
from ._video import Video, VideoStrategy

__all__ = [
    "FLASH",
    "MODELS",
    "PLUS",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "ContentModerationError",
    "CorruptMediaError",
    "EmbedResult",
    "EmptyInputError",
    "Image",
    "InputError",
    "MediaNotFoundError",
    "MediaTooLargeError",
    "MissingDependencyError",
    "ModelSpec",
    "MultiImage",
    "NotFoundError",
    "Part",
    "PartialResult",
    "PermissionDeniedError",
    "ProgressEvent",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServerError",
    "TextTooLongError",
    "TongyiVisionError",
    "TooManyImagesError",
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
]
