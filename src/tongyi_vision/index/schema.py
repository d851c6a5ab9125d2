"""The row of an index, the table's settings, and their Arrow form.

One row per item::

    id             string   the item: a path, plus #chunk=N (a text's chunk) or #t=S,E (a clip)
    source         string   the file it came from (absolute path)
    kind           string   text | image | video
    sha256         string   digest of the whole source file when it was embedded
    start_seconds  float64  a clip's start (null for texts and images)
    end_seconds    float64  a clip's end
    content        string   the text itself, or the media reference (file:///... URI)
    metadata       string   a JSON object: file_name, mime_type, bytes, width, height, ...
    vector         fixed_size_list<float32>[dimension]

and, in the schema's metadata under ``tongyi_vision``, a JSON object with the
format, its version, the model, vector size, dialect and clip length.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..media.clips import DEFAULT_CLIP_SECONDS
from ..wire.limits import MODELS, base_model
from .errors import NotAnIndexError

FORMAT = "tongyi-vision-index"
FORMAT_VERSION = 2
TABLE_NAME = "items"
"""The one table of an index folder: ``lancedb.connect(INDEX).open_table("items")``."""
SCHEMA_KEY = "tongyi_vision"
KINDS = ("text", "image", "video")
COLUMNS = (
    "id",
    "source",
    "kind",
    "sha256",
    "start_seconds",
    "end_seconds",
    "content",
    "metadata",
    "vector",
)
# Columns a row carries besides its metadata object: a document's metadata is both.
ROW_FIELDS = ("id", "source", "kind", "sha256", "start_seconds", "end_seconds")
DEFAULT_ANN_THRESHOLD = 50_000
"""Rows from which ``embed`` builds an approximate nearest-neighbour index."""


@dataclass(frozen=True)
class IndexInfo:
    """What made an index's vectors, kept in the table's schema metadata."""

    model: str
    dimension: int
    dialect: str
    clip_seconds: float = DEFAULT_CLIP_SECONDS
    """Length of the video clips, so that a later run cuts the same clips."""
    created: str = ""

    def dimension_option(self) -> int | None:
        """The ``dimension`` a client asks for to make these vectors: ``None`` when it is the
        model's own size (the gateway takes no other)."""
        spec = MODELS.get(base_model(self.model))
        return (
            None
            if spec is not None and spec.default_dimension == self.dimension
            else self.dimension
        )

    def encode(self) -> dict[str, str]:
        """The schema metadata of a table with these settings."""
        created = self.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self.model,
            "dimension": self.dimension,
            "dialect": self.dialect,
            "clip_seconds": self.clip_seconds,
            "created": created,
        }
        return {SCHEMA_KEY: json.dumps(record)}

    @classmethod
    def decode(cls, metadata: Mapping[bytes, bytes] | None, where: str) -> IndexInfo:
        """The settings in a table's schema metadata; :class:`NotAnIndexError` if there are none."""
        raw = (metadata or {}).get(SCHEMA_KEY.encode())
        try:
            record = json.loads(raw) if raw is not None else None
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise NotAnIndexError(
                f"holds a LanceDB table {TABLE_NAME!r} that tongyi-vision did not make; "
                "choose another folder",
                part=where,
            )
        if record.get("version") != FORMAT_VERSION:
            raise NotAnIndexError(
                f"is index format version {record.get('version')}; this tongyi-vision reads "
                f"version {FORMAT_VERSION}: upgrade tongyi-vision",
                part=where,
            )
        model, dimension, dialect = (
            record.get("model"),
            record.get("dimension"),
            record.get("dialect"),
        )
        clip = record.get("clip_seconds", DEFAULT_CLIP_SECONDS)
        if (
            not isinstance(model, str)
            or not isinstance(dimension, int)
            or not isinstance(dialect, str)
            or isinstance(clip, bool)
            or not isinstance(clip, (int, float))
        ):
            raise NotAnIndexError(
                "has settings without a model, a vector size, a dialect and a clip length; "
                "rebuild it with tongyi-vision embed",
                part=where,
            )
        return cls(model, dimension, dialect, float(clip), str(record.get("created", "")))


@dataclass
class Row:
    """One item of an index: what it is, where it came from, and its vector."""

    id: str
    source: str
    kind: str
    sha256: str
    content: str
    """The text itself, or the media reference (a ``file://`` URI, with ``#t=S,E`` for a clip)."""
    vector: Sequence[float] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    start_seconds: float | None = None
    end_seconds: float | None = None

    def document_metadata(self) -> dict[str, Any]:
        """The row's columns and its metadata object in one dict, as a document carries them."""
        columns: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
        }
        if self.start_seconds is not None:
            columns["start_seconds"] = self.start_seconds
        if self.end_seconds is not None:
            columns["end_seconds"] = self.end_seconds
        return {**self.metadata, **columns}


@dataclass(frozen=True)
class Hit:
    """A search result: the row and its cosine similarity to the query (1 is the same)."""

    score: float
    row: Row


def arrow_schema(pa: Any, info: IndexInfo) -> Any:
    """The Arrow schema of a table with these settings."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("source", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("sha256", pa.string()),
            pa.field("start_seconds", pa.float64()),
            pa.field("end_seconds", pa.float64()),
            pa.field("content", pa.string()),
            pa.field("metadata", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), info.dimension)),
        ],
        metadata=info.encode(),
    )


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    """A metadata object as compact JSON (values JSON cannot hold are written as text)."""
    clean = {k: _jsonable(v) for k, v in metadata.items() if k not in ROW_FIELDS}
    return json.dumps(clean, ensure_ascii=False, separators=(",", ":"), default=str)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def decode_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def rows_to_arrow(pa: Any, rows: Sequence[Row], schema: Any, dimension: int) -> Any:
    """The rows as an Arrow table of ``schema``; a vector of another size is refused."""
    for row in rows:
        if len(row.vector) != dimension:
            raise ValueError(
                f"row {row.id!r} has a vector of {len(row.vector)} numbers; the index holds "
                f"{dimension}-dimensional vectors"
            )
    flat = pa.array(_flat_float32([row.vector for row in rows]), type=pa.float32())
    return pa.table(
        {
            "id": [row.id for row in rows],
            "source": [row.source for row in rows],
            "kind": [row.kind for row in rows],
            "sha256": [row.sha256 for row in rows],
            "start_seconds": pa.array([row.start_seconds for row in rows], type=pa.float64()),
            "end_seconds": pa.array([row.end_seconds for row in rows], type=pa.float64()),
            "content": [row.content for row in rows],
            "metadata": [encode_metadata(row.metadata) for row in rows],
            "vector": pa.FixedSizeListArray.from_arrays(flat, dimension),
        },
        schema=schema,
    )


def _flat_float32(vectors: list[Sequence[float]]) -> Any:
    """The vectors end to end as float32 numbers (with numpy when it is there: LanceDB needs it)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - lancedb depends on numpy
        return [float(x) for vector in vectors for x in vector]
    return np.asarray(vectors, dtype=np.float32).reshape(-1) if vectors else []


def rows_from_arrow(table: Any) -> list[Row]:
    """The rows of an Arrow table of the index's columns (``vector`` may be left out)."""
    columns: dict[str, list[Any]] = {
        name: table.column(name).to_pylist() for name in table.column_names
    }
    count = table.num_rows
    empty: list[Any] = [None] * count

    def column(name: str) -> list[Any]:
        return columns.get(name, empty)

    vectors = column("vector")
    return [
        Row(
            id=str(row_id),
            source=source or "",
            kind=kind or "",
            sha256=sha or "",
            content=content or "",
            vector=vector or (),
            metadata=decode_metadata(metadata),
            start_seconds=start,
            end_seconds=end,
        )
        for row_id, source, kind, sha, content, vector, metadata, start, end in zip(
            column("id"),
            column("source"),
            column("kind"),
            column("sha256"),
            column("content"),
            vectors,
            column("metadata"),
            column("start_seconds"),
            column("end_seconds"),
            strict=True,
        )
    ]


def sql_string(value: str) -> str:
    """A string literal of LanceDB's SQL (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Sequence[str]) -> str:
    """``column IN ('a', 'b', ...)``."""
    return f"{column} IN ({', '.join(map(sql_string, values))})"
