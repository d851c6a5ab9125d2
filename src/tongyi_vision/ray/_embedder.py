"""The embedder of a Ray Data job: a callable class that holds a client, and the job itself.

:class:`TongyiVisionEmbedder` is what ``Dataset.map_batches`` runs on each actor
of its pool: it makes one :class:`~tongyi_vision.Client` when the actor starts,
and for each batch turns the rows of one column into parts (on the worker: files
are read, images fitted and encoded, video frames sampled there), embeds them in
one call of that client, and hands the batch back with a ``vector`` column. The
client does what it does anywhere: packing, concurrency, retries, the cache, the
rate limit (shared by every actor through :class:`SharedRateLimit`).
:func:`embed_dataset` is the same behind one function call.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from ..engine.client import Client
from ..engine.config import Secret
from ..engine.ratelimit import RateLimit
from ..media.parts import Part
from ..wire.errors import ConfigurationError, InputError
from ..wire.results import Usage, Vector
from ._batches import (
    Batch,
    batch_length,
    column_values,
    string_array,
    vector_array,
    with_columns,
)
from ._limit import DEFAULT_NAME, SharedRateLimit
from ._rows import RowKind, check_kind, row_part
from ._session import load_ray, start_ray

OnError = Literal["raise", "skip"]
VECTOR_COLUMN = "vector"
"""The column the vectors go in: ``fixed_size_list<float32>[dimension]``, null for a row
refused with ``on_error="skip"``."""
ERROR_COLUMN = "error"
"""The column that says why a row has no vector (``on_error="skip"``): ``"Type: message"``,
null for the rows embedded."""
DEFAULT_BATCH_SIZE = 256
"""Rows per call of an actor's client: enough for its requests in flight not to drain
between calls (20 texts or a few images a request, 8 requests at once)."""
DEFAULT_CONCURRENCY = 2
"""Actors in the pool when ``concurrency`` is not given."""


class HiddenKey(Secret):
    """An API key on its way to the actors: a :class:`Secret` that pickles as it is (the
    actors need it), still never shown in a repr, so that Ray's messages about an actor's
    arguments do not show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HiddenKey('**********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (HiddenKey, (self.get(),))


class TongyiVisionEmbedder:
    """A callable class for ``Dataset.map_batches``: embeds one column of each batch.

    >>> ds = ray.data.read_images("photos/", include_paths=True)
    >>> ds = ds.map_batches(
    ...     TongyiVisionEmbedder,
    ...     fn_constructor_kwargs={"column": "image", "cache": "redis://cache:6379/0"},
    ...     compute=ray.data.ActorPoolStrategy(size=4),
    ...     batch_size=256,
    ... )

    - ``column``: the column to embed. Its rows may hold texts, paths, URLs, ``file://``
      and ``data:`` references (a video's with ``#t=START,END``: a clip), image or video
      bytes, numpy pictures, content blocks or parts (see :func:`row_part`).
    - ``kind``: ``"auto"`` decides per row; ``"text"``, ``"image"`` or ``"video"`` reads
      every row as that. ``kind_column``: a column that says each row's kind instead
      (``text``, ``image``, ``video`` or ``auto``), as the index's ``kind`` does.
    - ``on_error``: ``"raise"`` (the default) fails the batch, and so the job, at the
      first row refused; ``"skip"`` gives that row a null ``vector`` and says why in
      ``error``. Errors that are not about one row (the key, an outage, the rate limit
      waited out) fail the batch either way.
    - ``usage_column``: a column to put each call's :class:`~tongyi_vision.Usage` in, as a
      JSON object on the batch's first row (null on the others): sum them for the job's.
    - everything else goes to :class:`~tongyi_vision.Client` on each actor: ``model``,
      ``dimension``, ``dialect``, ``base_url``, ``api_key`` (else each worker's
      environment), ``max_concurrency`` (requests in flight per actor), ``cache``,
      ``rate_limit`` (a :class:`SharedRateLimit`, for one budget across actors), ...

    ``__call__(batch)`` returns the batch, in the format it came in (numpy, pandas or
    pyarrow), with the ``vector`` column added (and ``error`` with ``on_error="skip"``).
    """

    def __init__(
        self,
        column: str,
        *,
        kind: RowKind = "auto",
        kind_column: str | None = None,
        on_error: OnError = "raise",
        usage_column: str | None = None,
        **client_options: Any,
    ) -> None:
        self.column = column
        self.kind = check_kind(kind)
        self.kind_column = kind_column
        self.on_error = _check_on_error(on_error)
        self.usage_column = usage_column
        self.client = Client(**_unwrapped(client_options))

    def __call__(self, batch: Batch) -> Batch:
        """Embed the batch's rows of :attr:`column`; the batch with ``vector`` (and
        ``error``) added."""
        values = column_values(batch, self.column)
        kinds: list[Any] = (
            column_values(batch, self.kind_column)
            if self.kind_column is not None
            else [self.kind] * len(values)
        )
        vectors, errors, usage = self.embed_values(values, kinds)
        added: dict[str, Any] = {VECTOR_COLUMN: vector_array(vectors, self.client.dimension)}
        if self.on_error == "skip":
            added[ERROR_COLUMN] = string_array([errors.get(i) for i in range(len(values))])
        if self.usage_column is not None:
            record = json.dumps(dataclasses.asdict(usage))
            rows = batch_length(batch)
            added[self.usage_column] = string_array([record] + [None] * (rows - 1) if rows else [])
        return with_columns(batch, added)

    def embed_values(
        self, values: list[Any], kinds: list[Any]
    ) -> tuple[list[Vector | None], dict[int, str], Usage]:
        """Embed one value per row, read as its kind; the vectors (``None`` for a row
        refused), why each refused row was, and the usage of the call."""
        parts: list[Part] = []
        rows: list[int] = []
        errors: dict[int, str] = {}
        for row, (value, kind) in enumerate(zip(values, kinds, strict=True)):
            try:
                missing = kind is None or (isinstance(kind, float) and kind != kind)  # NaN
                chosen = "auto" if missing else check_kind(kind, "the row's kind", InputError)
                parts.append(row_part(value, chosen, auto_fit=self.client.auto_fit))
            except InputError as exc:
                if self.on_error == "raise":
                    raise _without_position(exc) from exc.__cause__
                errors[row] = describe_error(exc)
                continue
            rows.append(row)
        vectors: list[Vector | None] = [None] * len(values)
        if not parts:
            return vectors, errors, Usage()
        if self.on_error == "skip":
            partial = self.client.embed(parts, on_invalid="skip")
            for position, error in partial.errors.items():
                errors[rows[position]] = describe_error(error)
            found, usage = partial.vectors, partial.usage
        else:
            try:
                result = self.client.embed(parts)
            except InputError as exc:
                raise _without_position(exc) from exc.__cause__
            found, usage = list(result.vectors), result.usage
        for position, vector in enumerate(found):
            vectors[rows[position]] = vector
        return vectors, errors, usage

    def close(self) -> None:
        """Close the client's connections (an actor's end closes them too)."""
        self.client.close()

    def __repr__(self) -> str:
        return f"TongyiVisionEmbedder(column={self.column!r}, client={self.client!r})"


def embed_dataset(
    ds: Any,
    *,
    column: str,
    kind: RowKind = "auto",
    kind_column: str | None = None,
    on_error: OnError = "raise",
    concurrency: int | tuple[int, int] = DEFAULT_CONCURRENCY,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_cpus: float | None = None,
    rate_limit: RateLimit | None = None,
    usage_column: str | None = None,
    preserve_order: bool = True,
    **client_options: Any,
) -> Any:
    """``ds`` with a ``vector`` column: the rows of ``column`` embedded by a pool of
    ``concurrency`` actors, each with its own client (``Dataset.map_batches`` with
    :class:`TongyiVisionEmbedder`). Lazy, as Ray datasets are: the work starts when the
    result is consumed (``take_all``, ``iter_batches``, a write, :func:`write_index`).

    >>> ds = ray.data.read_binary_files("photos/", include_paths=True)
    >>> ds = embed_dataset(ds, column="bytes", concurrency=8,
    ...                    rate_limit=RateLimit(requests_per_minute=1200),
    ...                    cache="redis://cache:6379/0")

    - ``column``, ``kind``, ``kind_column``, ``on_error``, ``usage_column``: as for
      :class:`TongyiVisionEmbedder` (``on_error="skip"`` adds the ``error`` column).
    - ``concurrency``: actors in the pool, or ``(min, max)`` for a pool that grows;
      ``num_cpus``: the CPUs each actor holds (it decodes and encodes media): by default
      one, or less where the cluster has too few CPUs for the pool and one more to read
      the data with (actors holding every CPU would leave none to the reads, and the job
      would wait forever); ``batch_size``: rows per call of an actor's client.
    - ``rate_limit``: the account's :class:`~tongyi_vision.RateLimit`, held by ONE named
      actor (:class:`SharedRateLimit`; a plain ``RateLimit`` is shared under the name
      ``"tongyi-vision-rate-limit"``) that every actor of the job draws its slots from.
    - ``client_options``: for :class:`~tongyi_vision.Client` on each actor (``model``,
      ``dimension``, ``dialect``, ``base_url``, ``api_key``, ``max_concurrency``,
      ``cache``, ...). They are checked here first, so a bad option fails now, on the
      driver, rather than in every actor. Without ``api_key``, each worker reads the key
      from its environment.

    - ``preserve_order``: rows come back in the input's order (the default; set on this
      dataset's own context and the ones made from it). ``False`` lets Ray hand back each
      batch as soon as it is done, which keeps every worker busy when batches take uneven
      times; each row carries its own vector either way.

    A batch that fails raises, where the dataset is consumed, the client's error (Ray's
    ``RayTaskError`` that is also an instance of it: ``except AuthenticationError`` works).
    """
    ray = load_ray("embed_dataset")
    if not ray.is_initialized():
        start_ray(ray)  # as the dataset would when it runs: the pool is sized by the cluster
    pool = _pool_size(concurrency)
    check_kind(kind)
    _check_on_error(on_error)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an int >= 1, not {batch_size!r}")
    options = dict(client_options)
    if rate_limit is not None:
        # started here, so that the job's driver owns it and it outlives every actor
        options["rate_limit"] = SharedRateLimit.of(rate_limit, name=DEFAULT_NAME).connect()
    check_client_options(options)
    if isinstance(options.get("api_key"), str):
        options["api_key"] = HiddenKey(options["api_key"])
    embedded = ds.map_batches(
        TongyiVisionEmbedder,
        fn_constructor_kwargs={
            "column": column,
            "kind": kind,
            "kind_column": kind_column,
            "on_error": on_error,
            "usage_column": usage_column,
            **options,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(**pool),
        num_cpus=actor_cpus(ray, pool, num_cpus),
    )
    # A failed batch raises the client's own error (an AuthenticationError, ...), not Ray's
    # UserCodeException that forgets it; the datasets made from this one inherit it.
    embedded.context.raise_original_map_exception = True
    if preserve_order:
        embedded.context.execution_options.preserve_order = True
    return embedded


def actor_cpus(ray: Any, pool: Mapping[str, int], given: float | None) -> float:
    """The CPUs each actor holds: ``given``, else one, or less on a cluster with too few
    CPUs for the pool and one more (a read task of the dataset needs one)."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, float)) or given < 0:
            raise ConfigurationError(f"num_cpus must be a number >= 0, not {given!r}")
        return float(given)
    actors = pool.get("size") or pool.get("max_size") or 1
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if not cpus:
        return 1.0
    return max(0.1, min(1.0, round((cpus - 1) / actors, 2)))


def check_client_options(options: Mapping[str, Any]) -> None:
    """Refuse now what the actors' clients would refuse: every option but the key (which
    a worker may find in its own environment) and the cache (opened on the workers)."""
    checked = {k: v for k, v in options.items() if k not in ("api_key", "cache")}
    if not isinstance(checked.get("rate_limit"), (RateLimit, type(None))):
        raise ConfigurationError(
            "rate_limit must be a tongyi_vision.RateLimit (for example "
            f"RateLimit(requests_per_minute=600)), not {type(checked['rate_limit']).__name__}"
        )
    checked.pop("rate_limit", None)  # a shared one would look its actor up: not needed here
    try:
        Client(api_key="checked-on-the-workers", **checked).close()
    except TypeError as exc:
        raise ConfigurationError(f"{exc}; see tongyi_vision.Client for its options") from exc


def describe_error(error: BaseException) -> str:
    """What the ``error`` column says of a refused row: its error's type and message."""
    if isinstance(error, InputError):
        where = f"{error.part}: " if error.part else ""
        return f"{type(error).__name__}: {where}{error.reason}"
    return f"{type(error).__name__}: {error}"


def _without_position(error: InputError) -> InputError:
    """The error without the position of its part in the call, which says nothing of the
    row in the dataset."""
    error.part_index = None
    error.args = (error._format(),)
    return error


def _check_on_error(value: object) -> OnError:
    if value not in ("raise", "skip"):
        raise ConfigurationError(f"on_error must be 'raise' or 'skip', not {value!r}")
    return value


def _pool_size(concurrency: object) -> dict[str, int]:
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return {"size": concurrency}
    if (
        isinstance(concurrency, tuple)
        and len(concurrency) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in concurrency)
        and 1 <= concurrency[0] <= concurrency[1]
    ):
        return {"min_size": concurrency[0], "max_size": concurrency[1]}
    raise ConfigurationError(
        f"concurrency must be a number of actors >= 1 or (min, max), not {concurrency!r}"
    )


def _unwrapped(options: Mapping[str, Any]) -> dict[str, Any]:
    unwrapped = dict(options)
    key = unwrapped.get("api_key")
    if isinstance(key, HiddenKey):
        unwrapped["api_key"] = key.get()
    return unwrapped
