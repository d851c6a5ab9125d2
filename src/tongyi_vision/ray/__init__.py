"""Ray Data: bulk embedding on a cluster, under one rate limit, into the CLI's index.

:func:`embed_dataset` adds a ``vector`` column to a Ray dataset, embedding one of
its columns (texts, paths, URLs, clip references, image or video bytes, the
pictures of ``ray.data.read_images``) with a pool of actors, each holding a
:class:`~tongyi_vision.Client`; files are read, images fitted and encoded and
video frames sampled on the workers. :class:`TongyiVisionEmbedder` is the callable
class behind it, for pipelines of your own. A :class:`SharedRateLimit` (what a
``rate_limit=`` becomes) is held by one named actor: every actor of a job, and
other jobs that use the same name, spend one account's budget. :func:`write_index`
writes the result into the LanceDB table of ``tongyi-vision embed``, which
``tongyi-vision search`` and both adapters' ``open_index`` read.

>>> import ray
>>> from tongyi_vision import RateLimit
>>> from tongyi_vision.ray import embed_dataset, write_index
>>> ds = ray.data.read_binary_files("photos/", include_paths=True)
>>> ds = embed_dataset(ds, column="bytes", concurrency=4, on_error="skip",
...                    rate_limit=RateLimit(requests_per_minute=1200),
...                    cache="redis://cache:6379/0")
>>> write_index(ds, "photos.index", id_column="path", kind="image")

Needs the ``ray`` extra: ``pip install 'tongyi-vision[ray]'``. Ray itself is imported
when a job is made, not with this package.
"""

import importlib.util

from .._public import show_as_public
from ..wire.errors import MissingDependencyError

if importlib.util.find_spec("ray") is None:  # pragma: no cover - exercised without Ray
    raise MissingDependencyError("ray", "ray", "tongyi_vision.ray")

from ._embedder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    ERROR_COLUMN,
    VECTOR_COLUMN,
    TongyiVisionEmbedder,
    embed_dataset,
)
from ._limit import DEFAULT_NAME, DEFAULT_NAMESPACE, SharedRateLimit
from ._rows import row_part
from ._session import start_ray
from ._write import IndexWrite, write_index

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_NAME",
    "DEFAULT_NAMESPACE",
    "ERROR_COLUMN",
    "VECTOR_COLUMN",
    "IndexWrite",
    "SharedRateLimit",
    "TongyiVisionEmbedder",
    "embed_dataset",
    "row_part",
    "start_ray",
    "write_index",
]

show_as_public(globals())
