"""LlamaIndex integration: one embedding model for text, images and video, and readers that
turn image and video files into documents :class:`MultiModalVectorStoreIndex` indexes.

>>> from llama_index.core.indices import MultiModalVectorStoreIndex
>>> from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding
>>> embedding = TongyiVisionEmbedding()            # key from EMPIRIOLABS_API_KEY
>>> documents = TongyiImageReader(recursive=True).load_data("photos/")
>>> index = MultiModalVectorStoreIndex.from_documents(
...     documents, embed_model=embedding, image_embed_model=embedding
... )

Pass the same instance as ``embed_model`` and ``image_embed_model``: text and
images then live in one vector space, so a text query finds images and an image
finds texts. Needs the ``llama-index`` extra: ``pip install 'tongyi-vision[llama-index]'``.
"""

from .._public import show_as_public
from ..wire.errors import MissingDependencyError

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "llama-index-core", "llama-index", "tongyi_vision.llama_index"
    ) from exc

from ._embedding import TongyiVisionEmbedding
from ._index import TongyiIndexVectorStore, open_index
from ._readers import (
    ReaderError,
    SkippedFileWarning,
    SkippedVideo,
    SkippedVideoWarning,
    TongyiImageReader,
    TongyiVideoReader,
)


def _register() -> None:
    """Let ``load_embed_model`` (how LlamaIndex revives a saved embedding model) know ours."""
    from llama_index.core.embeddings.loading import RECOGNIZED_EMBEDDINGS

    RECOGNIZED_EMBEDDINGS.setdefault(TongyiVisionEmbedding.class_name(), TongyiVisionEmbedding)


_register()

__all__ = [
    "ReaderError",
    "SkippedFileWarning",
    "SkippedVideo",
    "SkippedVideoWarning",
    "TongyiImageReader",
    "TongyiIndexVectorStore",
    "TongyiVideoReader",
    "TongyiVisionEmbedding",
    "open_index",
]

show_as_public(globals())
