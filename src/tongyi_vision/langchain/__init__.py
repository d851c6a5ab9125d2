"""LangChain integration: multimodal embeddings, image/video loaders, and the CLI's index.

Swap :class:`TongyiVisionEmbeddings` into any vector store and load media with
:class:`TongyiImageLoader` / :class:`TongyiVideoLoader`; the store, its
retrievers and chains keep working, now over images and video too.
:func:`open_index` opens the index ``tongyi-vision embed`` writes as a vector
store (:class:`TongyiIndexStore`; needs the ``index`` extra too).

>>> from langchain_core.vectorstores import InMemoryVectorStore
>>> from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings
>>> store = InMemoryVectorStore(TongyiVisionEmbeddings())
>>> store.add_documents(TongyiImageLoader("photos/").load())
>>> store.similarity_search("a red bicycle", k=1)

Needs the ``langchain`` extra: ``pip install 'tongyi-vision[langchain]'``.
"""

from .._public import show_as_public
from ..wire.errors import MissingDependencyError

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in an environment without LangChain
    raise MissingDependencyError("langchain-core", "langchain", "tongyi_vision.langchain") from exc

from ._blocks import to_content_blocks
from ._embeddings import TongyiVisionEmbeddings
from ._index import TongyiIndexStore, open_index
from ._loaders import (
    SkippedMediaWarning,
    SkippedVideoWarning,
    TongyiImageLoader,
    TongyiImageParser,
    TongyiVideoLoader,
    TongyiVideoParser,
)

__all__ = [
    "SkippedMediaWarning",
    "SkippedVideoWarning",
    "TongyiImageLoader",
    "TongyiImageParser",
    "TongyiIndexStore",
    "TongyiVideoLoader",
    "TongyiVideoParser",
    "TongyiVisionEmbeddings",
    "open_index",
    "to_content_blocks",
]

show_as_public(globals())
