"""The JSONL index of earlier versions: read by ``import``, written by ``export --to FILE.jsonl``.

One JSON object per line. The first is a header::

    {"type": "header", "format": "tongyi-vision-index", "version": 1,
     "model": "tongyi-embedding-vision-flash", "dimension": 768, "dialect": "openai",
     "clip_seconds": 10.0, "created": "2026-11-24T07:40:00+00:00"}

then one record per embedded item::

    {"type": "item", "id": "/abs/notes.md#chunk=2", "source": "/abs/notes.md", "kind": "text",
     "sha256": "<digest of the whole source file>", "metadata": {...}, "vector": [...]}

Earlier versions only ever appended to the file: later records win over
earlier ones with the same ``id``, and the records of a source whose content
changed since (another ``sha256`` later in the file) are dropped. A torn last
line is ignored; a record that is not valid is skipped and named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..index import IndexInfo, Row
from ..index.errors import NotAnIndexError
from ..media.clips import DEFAULT_CLIP_SECONDS
from ..media.sources import file_uri
from ..wire.errors import InputError, MediaNotFoundError

INDEX_FORMAT = "tongyi-vision-index"
INDEX_VERSION = 1


@dataclass
class JsonlIndex:
    """What a JSONL index holds: its settings, the current row of each item, and the lines
    that were skipped as unreadable (each saying which line and why)."""

    path: Path
    info: IndexInfo
    rows: dict[str, Row] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def read_jsonl(path: Path) -> JsonlIndex:
    """Read a JSONL index; raise :class:`NotAnIndexError` if it is not one."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise MediaNotFoundError("no such file; check the path", part=str(path)) from None
    except OSError as exc:
        raise MediaNotFoundError(f"cannot be read ({exc.strerror})", part=str(path)) from exc
    info: IndexInfo | None = None
    rows: dict[str, Row] = {}
    latest_sha: dict[str, str] = {}
    skipped: list[str] = []
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # a record the writer never finished
            try:
                record = json.loads(raw)
            except ValueError:
                if info is None:
                    raise _not_jsonl(path) from None
                skipped.append(f"line {number} is not JSON")
                continue
            if info is None:
                info = _parse_header(record, path)
                continue
            problem = _record_problem(record, info.dimension)
            if problem == "":
                continue  # another type of record: nothing of this version's
            if problem is not None:
                skipped.append(f"line {number} {problem}")
                continue
            row = _row(record)
            rows.pop(row.id, None)  # the later record wins, and comes later
            rows[row.id] = row
            latest_sha[row.source] = row.sha256
    if info is None:
        raise NotAnIndexError("holds no index (not even its header)", part=str(path))
    current = {key: row for key, row in rows.items() if latest_sha.get(row.source) == row.sha256}
    return JsonlIndex(path, info, current, skipped)


def _not_jsonl(path: Path) -> NotAnIndexError:
    return NotAnIndexError("does not start with a tongyi-vision index header", part=str(path))


def _record_problem(record: Any, dimension: int) -> str | None:
    """What makes a line no usable item record (``""`` for a record of another type)."""
    if not isinstance(record, dict):
        return "is not a record (an object)"
    if record.get("type") != "item":
        return ""
    if not isinstance(record.get("id"), str):
        return "has no id"
    vector = record.get("vector")
    if not isinstance(vector, list) or len(vector) != dimension:
        size = f"{len(vector)} values" if isinstance(vector, list) else type(vector).__name__
        return f"has a vector of {size}, not the header's {dimension} numbers"
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector)
    if not numbers or not all(map(math.isfinite, vector)):
        return "has a vector that is not all finite numbers"
    if not isinstance(record.get("metadata", {}), dict):
        return "has metadata that is not an object"
    return None


def _parse_header(record: Any, path: Path) -> IndexInfo:
    if (
        not isinstance(record, dict)
        or record.get("type") != "header"
        or record.get("format") != INDEX_FORMAT
    ):
        raise _not_jsonl(path)
    if record.get("version") != INDEX_VERSION:
        raise NotAnIndexError(
            f"is JSONL index format version {record.get('version')}; this tongyi-vision reads "
            f"version {INDEX_VERSION}",
            part=str(path),
        )
    model, dimension, dialect = record.get("model"), record.get("dimension"), record.get("dialect")
    if not isinstance(model, str) or not isinstance(dimension, int) or not isinstance(dialect, str):
        raise NotAnIndexError("has a header without model, dimension and dialect", part=str(path))
    clip_seconds = record.get("clip_seconds", DEFAULT_CLIP_SECONDS)
    if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, (int, float)):
        raise NotAnIndexError("has a header whose clip_seconds is not a number", part=str(path))
    return IndexInfo(model, dimension, dialect, float(clip_seconds), str(record.get("created", "")))


def _row(record: dict[str, Any]) -> Row:
    """The index row of a version-1 record: the text moves from the metadata to the content,
    a medium's content is its ``file://`` reference."""
    metadata = dict(record.get("metadata") or {})
    kind = str(record.get("kind") or "text")
    source = str(record.get("source") or record["id"])
    start = metadata.pop("start_seconds", None)
    end = metadata.pop("end_seconds", None)
    # A text's words were in its metadata; a medium's content is its file:// reference.
    content = str(metadata.pop("text", "")) if kind == "text" else _reference(source, start, end)
    return Row(
        id=record["id"],
        source=source,
        kind=kind,
        sha256=str(record.get("sha256") or ""),
        content=content,
        vector=[float(x) for x in record["vector"]],
        metadata=metadata,
        start_seconds=_seconds(start),
        end_seconds=_seconds(end),
    )


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _reference(source: str, start: Any, end: Any) -> str:
    path = Path(source)
    uri = path.as_uri() if path.is_absolute() else file_uri(path)
    if _seconds(start) is not None and _seconds(end) is not None:
        uri += f"#t={float(start):g},{float(end):g}"
    return uri


# --- writing (export) ---


def write_jsonl(handle: IO[bytes], info: IndexInfo, rows: Iterable[Row]) -> int:
    """Write ``rows`` as a version-1 JSONL index; returns how many."""
    header = {
        "type": "header",
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "model": info.model,
        "dimension": info.dimension,
        "dialect": info.dialect,
        "clip_seconds": info.clip_seconds,
        "created": info.created,
    }
    handle.write(_line(header))
    count = 0
    for row in rows:
        handle.write(_line(_record(row)))
        count += 1
    return count


def _record(row: Row) -> dict[str, Any]:
    metadata = dict(row.metadata)
    if row.kind == "text":
        metadata["text"] = row.content
    if row.start_seconds is not None:
        metadata.update(start_seconds=row.start_seconds, end_seconds=row.end_seconds)
    return {
        "type": "item",
        "id": row.id,
        "source": row.source,
        "kind": row.kind,
        "sha256": row.sha256,
        "metadata": metadata,
        "vector": [float(x) for x in row.vector],
    }


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def batched(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """``rows`` in lists of at most ``size``."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_same_settings(info: IndexInfo, into: IndexInfo, source: Path, out: Path) -> None:
    """Refuse to put vectors of one model, size or clip length into an index of another."""
    for name, given, held in (
        ("model", info.model, into.model),
        ("vector size", info.dimension, into.dimension),
        ("clip length", info.clip_seconds, into.clip_seconds),
    ):
        if given != held:
            raise InputError(
                f"holds vectors whose {name} is {given}, but {out} holds {held}; import into "
                "another --out",
                part=str(source),
            )
