"""The JSONL index that ``tongyi-vision embed`` writes and ``tongyi-vision search`` reads.

One JSON object per line. The first is a header::

    {"type": "header", "format": "tongyi-vision-index", "version": 1,
     "model": "tongyi-embedding-vision-flash", "dimension": 768, "dialect": "openai",
     "clip_seconds": 10.0, "created": "2026-11-24T07:40:00+00:00"}

then one record per embedded item::

    {"type": "item", "id": "/abs/notes.md#chunk=2", "source": "/abs/notes.md", "kind": "text",
     "sha256": "<digest of the whole source file>", "metadata": {...}, "vector": [...]}

The file is only ever appended to, by one writer at a time (an exclusive lock),
the records of each request on disk as soon as that request finishes. An item is done when a record
with its ``id`` and the current ``sha256`` of its source file is in the file, so
a second run sends only what is new, changed or failed before. If a file
changes, its new records are appended and readers ignore the older ones.
A torn last line (the process was killed while writing) is cut off before
anything new is appended.
"""

from __future__ import annotations

import heapq
import json
import math
import operator
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from ..media.clips import DEFAULT_CLIP_SECONDS
from ..wire.errors import InputError, MediaNotFoundError
from .items import Item

INDEX_FORMAT = "tongyi-vision-index"
INDEX_VERSION = 1


@dataclass
class Header:
    """The first record of an index: what made its vectors."""

    model: str
    dimension: int
    dialect: str
    created: str = ""
    clip_seconds: float = DEFAULT_CLIP_SECONDS
    """Length of the video clips, so that a later run cuts the same clips."""

    def record(self) -> dict[str, Any]:
        return {
            "type": "header",
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "model": self.model,
            "dimension": self.dimension,
            "dialect": self.dialect,
            "clip_seconds": self.clip_seconds,
            "created": self.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


# --- reading ---


@dataclass
class Index:
    """What an index file holds: its header, the current record of each item, and the lines
    that were skipped as unreadable (each saying which line and why)."""

    path: Path
    header: Header
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def is_done(self, item: Item) -> bool:
        record = self.records.get(item.id)
        return record is not None and record.get("sha256") == item.sha256


def check_regular(path: Path, what: str) -> bool:
    """Whether ``path`` exists; a FIFO, a device or a folder there is refused (opening a FIFO
    would wait forever for a writer)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", part=str(path)) from exc
    if not stat.S_ISREG(mode):
        raise InputError(f"is not a regular file; give a file for {what}", part=str(path))
    return True


def read_index(path: Path) -> Index:
    """Read an index; raise :class:`InputError` if it is not one.

    Later records win over earlier ones with the same ``id``, and records of a
    source file whose content changed since (another ``sha256`` later in the
    file) are dropped. A torn last line is ignored; a record that is not valid
    (not JSON, a vector that is not the header's size of finite numbers, metadata
    that is not an object) is skipped and named in :attr:`Index.skipped`.
    """
    if not check_regular(path, "the index"):
        raise MediaNotFoundError(
            "no such index file; make one with: tongyi-vision embed PATH --out FILE",
            part=str(path),
        )
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise MediaNotFoundError(f"cannot be read ({exc.strerror})", part=str(path)) from exc
    header: Header | None = None
    records: dict[str, dict[str, Any]] = {}
    latest_sha: dict[str, str] = {}
    skipped: list[str] = []
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # a record the writer never finished; the next run cuts it off
            try:
                record = json.loads(raw)
            except ValueError:
                if header is None:
                    raise InputError(
                        "does not start with a tongyi-vision index header", part=str(path)
                    ) from None
                skipped.append(f"line {number} is not JSON")
                continue
            if header is None:
                header = _parse_header(record, path)
                continue
            problem = _record_problem(record, header.dimension)
            if problem == "":
                continue  # another type of record: nothing of this version's
            if problem is not None:
                skipped.append(f"line {number} {problem}")
                continue
            records[record["id"]] = record
            latest_sha[str(record.get("source"))] = str(record.get("sha256"))
    if header is None:
        raise InputError("holds no index yet (not even its header)", part=str(path))
    current = {
        key: record
        for key, record in records.items()
        if latest_sha.get(str(record.get("source"))) == str(record.get("sha256"))
    }
    return Index(path, header, current, skipped)


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


def _parse_header(record: Any, path: Path) -> Header:
    if (
        not isinstance(record, dict)
        or record.get("type") != "header"
        or record.get("format") != INDEX_FORMAT
    ):
        raise InputError("does not start with a tongyi-vision index header", part=str(path))
    if record.get("version") != INDEX_VERSION:
        raise InputError(
            f"is index format version {record.get('version')}; this tongyi-vision reads "
            f"version {INDEX_VERSION}",
            part=str(path),
        )
    model, dimension, dialect = record.get("model"), record.get("dimension"), record.get("dialect")
    if not isinstance(model, str) or not isinstance(dimension, int) or not isinstance(dialect, str):
        raise InputError("has a header without model, dimension and dialect", part=str(path))
    clip_seconds = record.get("clip_seconds", DEFAULT_CLIP_SECONDS)
    if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, (int, float)):
        raise InputError("has a header whose clip_seconds is not a number", part=str(path))
    return Header(model, dimension, dialect, str(record.get("created", "")), float(clip_seconds))


# --- writing ---


class IndexWriter:
    """The one writer of an index file: it holds an exclusive lock on the file while open
    (a second ``embed`` on the same file is refused, not run twice), cuts off a line torn
    by a crash, and appends records, each batch on disk before :meth:`append` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # A file made here and never written (the run failed before its header) is removed.
        self._created = not check_regular(path, "--out")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a+b")
        except OSError as exc:
            raise InputError(
                f"cannot be written ({exc.strerror or exc}); choose another --out", part=str(path)
            ) from exc
        try:
            _lock(self._handle.fileno(), path)
            _cut_torn_tail(self._handle)
        except BaseException:
            self._handle.close()
            raise

    @property
    def empty(self) -> bool:
        """Whether the file holds nothing yet (a new index, or one torn before its header)."""
        return self._handle.seek(0, os.SEEK_END) == 0

    def start(self, header: Header) -> None:
        """Write the header of a new index."""
        self._write([header.record()])

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Write ``records`` and make them durable before returning."""
        if records:
            self._write(records)

    def _write(self, records: Sequence[dict[str, Any]]) -> None:
        data = b"".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for r in records
        )
        try:
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise InputError(
                f"cannot be written ({exc.strerror or exc}); what it holds is kept: free some "
                "space (or fix the cause) and run the same command again",
                part=str(self.path),
            ) from exc

    def close(self) -> None:
        empty = self.empty
        self._handle.close()
        if self._created and empty:
            self.path.unlink(missing_ok=True)


def _lock(descriptor: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: no lock, as before
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(
            "is being written by another tongyi-vision embed; wait for it to finish, or "
            "choose another --out",
            part=str(path),
        ) from None


def _cut_torn_tail(handle: BinaryIO) -> None:
    """Drop a last line without its newline: a record (or a header) cut short by a crash."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return
    # Walk back to the last complete line; records are small, so this reads little.
    position = size
    while position > 0:
        step = min(65536, position)
        position -= step
        handle.seek(position)
        block = handle.read(step)
        newline = block.rfind(b"\n")
        if newline >= 0:
            handle.truncate(position + newline + 1)
            return
    handle.truncate(0)


def item_record(item: Item, vector: list[float]) -> dict[str, Any]:
    """The index record of an embedded item."""
    return {
        "type": "item",
        "id": item.id,
        "source": item.source,
        "kind": item.kind,
        "sha256": item.sha256,
        "metadata": item.metadata,
        "vector": vector,
    }


# --- searching ---


@dataclass(frozen=True)
class Hit:
    """One search result."""

    score: float
    record: dict[str, Any]


def top_k(index: Index, query: Sequence[float], k: int) -> list[Hit]:
    """The ``k`` records nearest to ``query`` by cosine similarity, best first."""
    query_norm = math.sqrt(sum(map(operator.mul, query, query))) or 1.0
    scored = []
    for record in index.records.values():
        vector = record["vector"]
        # map(operator.mul) keeps the loop in C: about three times faster than a generator.
        norm = math.sqrt(sum(map(operator.mul, vector, vector))) or 1.0
        dot = sum(map(operator.mul, query, vector))
        scored.append((dot / (norm * query_norm), record["id"], record))
    best = heapq.nlargest(k, scored, key=lambda entry: (entry[0], entry[1]))
    return [Hit(score, record) for score, _, record in best]
