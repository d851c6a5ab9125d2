"""Writing a job's vectors into the CLI's index: one row schema for the CLI, both
frameworks and Ray.

:func:`write_index` streams the rows of a dataset to the driver and commits them
to the index folder's LanceDB table (``items``) the way ``tongyi-vision embed``
does: under the folder's write lock (one writer at a time), a commit per batch
(what a killed job committed stays), replacing the rows of the same ids
(``mode="upsert"``) or only adding (``mode="append"``), then one compaction. A
new index gets the model, vector size, dialect and clip length in its schema, so
``tongyi-vision search``, ``open_index`` of both adapters and a later
``tongyi-vision embed`` read it as their own.

:func:`index_rows` is how a dataset's columns become rows: ``id`` and ``vector``
are needed; ``kind`` and ``content`` are the row's or derived; ``source``,
``sha256``, ``start_seconds``, ``end_seconds`` and ``metadata`` are taken when the
dataset has them.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..engine.config import resolve_settings
from ..index import IndexInfo, IndexTable, Row, WriteLock
from ..index.schema import KINDS
from ..index.table import LOCK_FILE, describe_path, load_lancedb, not_an_index
from ..media.clips import DEFAULT_CLIP_SECONDS
from ..media.sources import file_uri, is_url, path_from, path_text, time_fragment_of
from ..wire.errors import ConfigurationError, InputError
from ._embedder import VECTOR_COLUMN
from ._session import load_ray

WriteMode = Literal["upsert", "append"]
DEFAULT_WRITE_BATCH = 4096
"""Rows per commit: a commit costs about the same for 8 rows as for 4,000."""
# Columns of the index a dataset may hold under the same names.
_OPTIONAL = ("source", "sha256", "start_seconds", "end_seconds", "metadata")


@dataclass(frozen=True)
class IndexWrite:
    """What :func:`write_index` did: rows written, rows left out for having no vector (refused
    with ``on_error="skip"``), and the rows the index holds now."""

    written: int
    skipped: int
    total: int


@dataclass(frozen=True)
class RowColumns:
    """Which columns of a dataset make which part of an index row."""

    id: str = "id"
    kind: str = "kind"
    content: str = "content"
    metadata: tuple[str, ...] = ()
    """Columns folded into each row's metadata object (a label, a caption...)."""
    default_kind: str | None = None
    """The kind of rows without a ``kind`` column."""

    def wanted(self) -> list[str]:
        names = [self.id, self.kind, self.content, *_OPTIONAL, VECTOR_COLUMN, *self.metadata]
        return list(dict.fromkeys(names))


def write_index(
    ds: Any,
    index: str | os.PathLike[str],
    *,
    mode: WriteMode = "upsert",
    kind: Literal["text", "image", "video"] | None = None,
    id_column: str = "id",
    kind_column: str = "kind",
    content_column: str = "content",
    metadata_columns: Sequence[str] = (),
    model: str | None = None,
    dialect: str | None = None,
    dimension: int | None = None,
    clip_seconds: float | None = None,
    batch_size: int = DEFAULT_WRITE_BATCH,
) -> IndexWrite:
    """Write the rows of ``ds`` (with its ``vector`` column, as :func:`embed_dataset`
    gives it) into the index folder ``index``, made if missing.

    >>> ds = embed_dataset(ray.data.read_binary_files("photos/", include_paths=True),
    ...                    column="bytes", on_error="skip")
    >>> write_index(ds, "photos.index", id_column="path", kind="image")
    >>> # then: tongyi-vision search photos.index "a red bicycle"

    - ``mode``: ``"upsert"`` replaces the rows with the ids written (a second write of
      the same rows changes nothing, of new ones adds them); ``"append"`` only adds.
    - ``id_column`` names each row (a path, a URL, a key of yours); ``kind_column`` says
      ``text``, ``image`` or ``video`` per row, else ``kind`` for every row;
      ``content_column`` holds the text itself, or the media reference search results
      show and the adapters open (a ``file://`` URI, with ``#t=S,E`` for a clip); a
      media row without one gets its id's (a local path becomes its ``file://`` URI).
      Columns named ``source``, ``sha256``, ``start_seconds``, ``end_seconds`` and
      ``metadata`` (a dict or a JSON object) are taken as they are;
      ``metadata_columns`` are added to each row's metadata object.
    - ``model``, ``dialect``, ``dimension``: what made the vectors, for a new index (else
      the client's defaults: ``TONGYI_VISION_MODEL``, ...); an existing index must
      match. ``clip_seconds``: the clip length recorded for a new index.

    Rows without a vector (refused with ``on_error="skip"``) are left out and counted.
    The rows travel to this process (the driver), which alone writes: the index folder
    is on its disk, under its write lock.
    """
    ray = load_ray("write_index")
    del ray  # imported for its error when the extra is missing; the dataset calls Ray
    if mode not in ("upsert", "append"):
        raise ConfigurationError(f"mode must be 'upsert' or 'append', not {mode!r}")
    if kind is not None and kind not in KINDS:
        raise ConfigurationError(f"kind must be 'text', 'image', 'video' or None, not {kind!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an int >= 1, not {batch_size!r}")
    columns = RowColumns(
        id=id_column,
        kind=kind_column,
        content=content_column,
        metadata=tuple(metadata_columns),
        default_kind=kind,
    )
    path = Path(index).expanduser()
    load_lancedb()  # a missing `index` extra is said before the job runs
    lock = WriteLock(path)
    what = describe_path(path)
    if what not in ("missing", "empty", "folder"):
        raise not_an_index(path, what)
    if what == "folder" and not IndexTable.exists(path):
        raise not_an_index(path, "folder")
    lock.acquire()
    table: IndexTable | None = None
    try:
        table = IndexTable.open(path) if IndexTable.exists(path) else None
        wanted = _settings(table, model, dialect, dimension, clip_seconds, path)
        written = skipped = 0
        projected = ds.map_batches(
            _project,
            fn_kwargs={"names": columns.wanted()},
            batch_format="pyarrow",
            num_cpus=0,  # a projection: it must not wait for the CPUs the embedders hold
        )
        for batch in projected.iter_batches(batch_format="pyarrow", batch_size=batch_size):
            rows, refused = index_rows(batch_columns(batch), columns)
            skipped += refused
            if not rows:
                continue
            if table is None:
                table = _create(path, wanted, len(rows[0].vector))
            _check_width(table, rows[0], path)
            if mode == "upsert":
                table.upsert(_last_of_each_id(rows))
            else:
                table.add(rows)
            written += len(rows)
        if table is None:
            return IndexWrite(0, skipped, 0)
        table.compact()
        return IndexWrite(written, skipped, table.count())
    finally:
        lock.release()
        if table is None and what == "missing":
            _remove_unused(path)


def _remove_unused(path: Path) -> None:
    """Remove the folder a write made for an index it never created (no row came)."""
    (path / LOCK_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something else was put there meanwhile: leave it
        path.rmdir()


def _project(batch: Any, names: Sequence[str]) -> Any:
    """Only the columns an index row is made of (the pictures and bytes stay on the workers)."""
    return batch.select([name for name in names if name in batch.column_names])


def batch_columns(batch: Any) -> dict[str, list[Any]]:
    """A pyarrow batch's columns as Python values, the vectors as numpy rows (or ``None``)."""
    columns: dict[str, list[Any]] = {}
    for name in batch.column_names:
        column = batch.column(name)
        if name == VECTOR_COLUMN:
            columns[name] = _vectors(column)
        else:
            columns[name] = column.to_pylist()
    return columns


def _vectors(column: Any) -> list[Any]:
    import numpy as np

    vectors: list[Any] = []
    for chunk in column.chunks:
        nulls = chunk.is_null().to_pylist()
        width = getattr(chunk.type, "list_size", None)
        if not width:  # a variable-size list (vectors of an unknown model)
            vectors.extend(
                None if v is None else np.asarray(v, dtype=np.float32) for v in chunk.to_pylist()
            )
            continue
        # the child values keep a slot for each null row; slice them as the chunk is sliced
        start = chunk.offset * width
        flat = chunk.values.slice(start, len(chunk) * width).to_numpy(zero_copy_only=False)
        matrix = np.asarray(flat, dtype=np.float32).reshape(len(chunk), width)
        vectors.extend(None if null else matrix[i] for i, null in enumerate(nulls))
    return vectors


def index_rows(columns: Mapping[str, Sequence[Any]], names: RowColumns) -> tuple[list[Row], int]:
    """The index rows of a batch's columns, and how many rows had no vector (left out).

    An :class:`InputError` names the row and what it lacks: an id, a kind (no ``kind``
    column and no default), or a text's content.
    """
    if VECTOR_COLUMN not in columns:
        raise InputError(
            f"the dataset has no {VECTOR_COLUMN!r} column; write what embed_dataset returns"
        )
    if names.id not in columns:
        raise InputError(
            f"the dataset has no id column {names.id!r} (its columns: "
            f"{', '.join(map(repr, columns))}); name one with id_column=..., such as 'path' "
            "for read_binary_files(..., include_paths=True)"
        )
    vectors = columns[VECTOR_COLUMN]
    rows: list[Row] = []
    skipped = 0
    for position, vector in enumerate(vectors):
        if vector is None:
            skipped += 1
            continue

        def cell(name: str, position: int = position) -> Any:
            values = columns.get(name)
            return None if values is None else values[position]

        rows.append(_row(cell, vector, names))
    return rows, skipped


def _row(cell: Any, vector: Any, names: RowColumns) -> Row:
    row_id = cell(names.id)
    if row_id is None or str(row_id) == "":
        raise InputError(f"a row has no id in column {names.id!r}")
    row_id = str(row_id)
    kind = cell(names.kind) or names.default_kind
    if kind not in KINDS:
        raise InputError(
            f"has no kind (text, image or video): give the dataset a {names.kind!r} column, "
            "or kind=... for every row"
            if kind is None
            else f"has kind {kind!r}; the index holds text, image and video rows",
            part=repr(row_id),
        )
    content = cell(names.content)
    if content is None:
        if kind == "text":
            raise InputError(
                f"is a text row without its text: name the column that holds it with "
                f"content_column=... (now {names.content!r})",
                part=repr(row_id),
            )
        content = _reference(row_id)
    content = str(content)
    if kind != "text":
        content = _reference(content)  # a local path as the file:// URI a reference is
    start, end = cell("start_seconds"), cell("end_seconds")
    if kind == "video" and start is None and end is None and content.startswith("file://"):
        start, end = time_fragment_of(content)
    source = cell("source")
    if source is None:
        source = row_id if kind == "text" else _source_of(content)
    return Row(
        id=row_id,
        source=str(source),
        kind=kind,
        sha256=str(cell("sha256") or ""),
        content=content,
        vector=vector,
        metadata={**_metadata(cell("metadata"), row_id), **{n: cell(n) for n in names.metadata}},
        start_seconds=None if start is None else float(start),
        end_seconds=None if end is None else float(end),
    )


def _reference(value: str) -> str:
    """A media row's reference from its id or content: a URL or URI as it is, a local path
    as its ``file://`` URI (a clip's ``#t=`` kept)."""
    if is_url(value) or value.startswith(("file://", "data:")):
        return value
    path, hash_, fragment = value.partition("#")
    return file_uri(os.path.abspath(path)) + (hash_ + fragment if fragment.startswith("t=") else "")


def _source_of(content: str) -> str:
    if content.startswith("file://"):
        return path_text(path_from(content))
    return content.partition("#")[0] if is_url(content) else content


def _metadata(value: Any, row_id: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            decoded = json.loads(value) if value else {}
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            return decoded
    raise InputError("has a metadata value that is not a JSON object or a dict", part=repr(row_id))


def _last_of_each_id(rows: list[Row]) -> list[Row]:
    """One row per id (the last): an upsert of one batch may not match a row twice."""
    return list({row.id: row for row in rows}.values())


def _settings(
    table: IndexTable | None,
    model: str | None,
    dialect: str | None,
    dimension: int | None,
    clip_seconds: float | None,
    path: Path,
) -> IndexInfo:
    """The settings of the index: an existing one's (which those given must match), else
    those given, completed as a client would (the vector size may be 0: not known yet)."""
    if table is not None:
        info = table.info
        for name, given, held in (
            ("model", model, info.model),
            ("dialect", dialect, info.dialect),
            ("dimension", dimension, info.dimension),
            ("clip_seconds", clip_seconds, info.clip_seconds),
        ):
            if given is not None and given != held:
                raise InputError(
                    f"holds {name} {held!r}, not {given!r}; write with the index's settings, "
                    "or to another index",
                    part=str(path),
                )
        return info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown model was warned of where it embedded
        settings = resolve_settings(
            api_key="unused",
            base_url=None,
            model=model,
            dialect=dialect,
            dimension=dimension,
        )
    return IndexInfo(
        settings.model,
        settings.expected_dimension or 0,
        settings.dialect,
        DEFAULT_CLIP_SECONDS if clip_seconds is None else float(clip_seconds),
    )


def _create(path: Path, info: IndexInfo, width: int) -> IndexTable:
    """The table of a new index, of vectors of ``width`` numbers (the first row's)."""
    if info.dimension and info.dimension != width:
        raise InputError(
            f"the dataset's vectors have {width} numbers; {info.model} makes {info.dimension}: "
            "give write_index the model= and dimension= the vectors were made with",
            part=str(path),
        )
    return IndexTable.create(
        path, IndexInfo(info.model, width, info.dialect, info.clip_seconds, info.created)
    )


def _check_width(table: IndexTable, row: Row, path: Path) -> None:
    if len(row.vector) != table.info.dimension:
        raise InputError(
            f"holds {table.info.dimension}-dimensional vectors of {table.info.model}; the "
            f"dataset's have {len(row.vector)}",
            part=str(path),
        )
