"""The JSONL index that ``tongyi-vision embed`` writes and ``tongyi-vision search`` reads.

One JSON object per line. The first is a header::

    {"type": "header", "format": "tongyi-vision-index", "version": 1,
     "model": "tongyi-embedding-vision-flash", "dimension": 768, "dialect": "openai",
     "clip_seconds": 10.0, "created": "2026-11-24T07:40:00+00:00"}

then one record per embedded item::

    {"type": "item", "id": "/abs/notes.md#chunk=2", "source": "/abs/notes.md", "kind": "text",
     "sha256": "<digest of the whole source file>", "metadata": {...}, "vector": [...]}

The file is only ever appended to, one chunk of records at a time, each chunk
flushed to disk before the next request is sent. An item is done when a record
with its ``id`` and the current ``sha256`` of its source file is in the file, so
a second run sends only what is new, changed or failed before. If a file
changes, its new records are appended and readers ignore the older ones.
A torn last line (the process was killed while writing) is cut off before
anything new is appended.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._clips import DEFAULT_CLIP_SECONDS
from ._exceptions import (
    APIError,
    BadRequestError,
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    RequestTooLargeError,
    TongyiVisionError,
    UnsupportedMediaError,
)
from ._files import walk_folder
from ._limits import (
    IMAGE_MIME_TYPES,
    MAX_TEXT_TOKENS,
    VIDEO_MIME_TYPES,
    estimate_text_tokens,
    sniff_image_format,
    sniff_video_format,
)

if TYPE_CHECKING:
    from ._client import Client
    from ._clips import VideoClip
    from ._parts import Part
    from ._types import ProgressEvent

INDEX_FORMAT = "tongyi-vision-index"
INDEX_VERSION = 1
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
# Items per embed call: small enough that a crash loses little, large enough to keep
# several requests in flight at once.
DEFAULT_CHUNK_SIZE = 64
_HEAD = 64

Kind = Literal["text", "image", "video"]
OnError = Literal["skip", "stop"]


@dataclass(frozen=True)
class Item:
    """One thing to embed: a text chunk, an image, or a video clip."""

    id: str
    source: str
    kind: Kind
    sha256: str
    metadata: dict[str, Any]
    part: Callable[[], Part]


@dataclass(frozen=True)
class Failure:
    """An item (or a file) that could not be embedded, and why."""

    id: str
    error: TongyiVisionError


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
    """What an index file holds: its header and the current record of each item."""

    path: Path
    header: Header
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def is_done(self, item: Item) -> bool:
        record = self.records.get(item.id)
        return record is not None and record.get("sha256") == item.sha256


def read_index(path: Path) -> Index:
    """Read an index; raise :class:`InputError` if it is not one.

    Later records win over earlier ones with the same ``id``, and records of a
    source file whose content changed since (another ``sha256`` later in the
    file) are dropped. A torn last line is ignored.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise MediaNotFoundError(
            "no such index file; make one with: tongyi-vision embed PATH --out FILE",
            part=str(path),
        ) from exc
    except OSError as exc:
        raise MediaNotFoundError(f"cannot be read ({exc.strerror})", part=str(path)) from exc
    header: Header | None = None
    records: dict[str, dict[str, Any]] = {}
    latest_sha: dict[str, str] = {}
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # a record the writer never finished; the next run cuts it off
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise InputError(
                    f"line {number} is not JSON; is this a tongyi-vision index?", part=str(path)
                ) from exc
            if header is None:
                header = _parse_header(record, path)
                continue
            if not isinstance(record, dict) or record.get("type") != "item":
                continue
            record_id, vector = record.get("id"), record.get("vector")
            if not isinstance(record_id, str) or not isinstance(vector, list):
                raise InputError(f"line {number} is not a valid item record", part=str(path))
            if len(vector) != header.dimension:
                raise InputError(
                    f"line {number} has a vector of {len(vector)} numbers, "
                    f"not the header's {header.dimension}",
                    part=str(path),
                )
            records[record_id] = record
            latest_sha[str(record.get("source"))] = str(record.get("sha256"))
    if header is None:
        raise InputError("is empty, not a tongyi-vision index", part=str(path))
    current = {
        key: record
        for key, record in records.items()
        if latest_sha.get(str(record.get("source"))) == str(record.get("sha256"))
    }
    return Index(path, header, current)


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
    """Appends records to an index file, flushing each chunk to disk."""

    def __init__(self, path: Path, header: Header, *, new: bool) -> None:
        self.path = path
        try:
            if not new:
                _cut_torn_tail(path)
            self._handle = path.open("ab")
        except OSError as exc:
            raise InputError(
                f"cannot be written ({exc.strerror or exc}); choose another --out", part=str(path)
            ) from exc
        if new:
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
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline: a record cut short by a crash."""
    with path.open("r+b") as handle:
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


# --- finding what to embed ---


def split_text(text: str, max_tokens: int = MAX_TEXT_TOKENS) -> list[str]:
    """Split ``text`` into chunks the service takes (each within ``max_tokens`` by the estimate).

    Paragraphs stay whole where they fit and are packed together up to the
    limit; a longer paragraph is split between words, and a longer word
    between characters. Whitespace-only text gives no chunks.
    """
    chunks: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        joined = f"{current}\n\n{paragraph}" if current else paragraph
        if estimate_text_tokens(joined) <= max_tokens:
            current = joined
            continue
        if current:
            chunks.append(current)
        if estimate_text_tokens(paragraph) <= max_tokens:
            current = paragraph
            continue
        current = ""
        for piece in _split_words(paragraph, max_tokens):
            chunks.append(piece)
    if current:
        chunks.append(current)
    return chunks


def _split_words(paragraph: str, max_tokens: int) -> Iterator[str]:
    words = paragraph.split()
    start = 0
    while start < len(words):
        word = words[start]
        if estimate_text_tokens(word) > max_tokens:
            # A run without spaces (CJK text, a long token): cut it by characters.
            while estimate_text_tokens(word) > max_tokens:
                cut = _longest_prefix(word, max_tokens)
                yield word[:cut]
                word = word[cut:]
            words[start] = word
        # The most words from `start` that fit, found by doubling then halving the count,
        # so that a long paragraph costs a few estimates per chunk, not one per word.
        fits, step = 1, 1
        while start + fits + step <= len(words) and _fits(words, start, fits + step, max_tokens):
            fits += step
            step *= 2
        while step > 1:
            step //= 2
            if start + fits + step <= len(words) and _fits(words, start, fits + step, max_tokens):
                fits += step
        yield " ".join(words[start : start + fits])
        start += fits


def _fits(words: list[str], start: int, count: int, max_tokens: int) -> bool:
    return estimate_text_tokens(" ".join(words[start : start + count])) <= max_tokens


def _longest_prefix(word: str, max_tokens: int) -> int:
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_text_tokens(word[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class Collected:
    """The items found under some paths, and what could not be read or was left out."""

    items: list[Item] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def collect_items(
    paths: Iterable[str | os.PathLike[str]],
    *,
    clip_seconds: float | None = None,
    on_error: OnError = "skip",
) -> Collected:
    """Find every image, video and text file under ``paths``, as items to embed.

    Folders are walked recursively in name order, skipping hidden entries;
    files of other kinds inside folders are ignored (and listed), while a file
    named directly that is none of the three is an input error. A path that
    does not exist raises :class:`MediaNotFoundError` at once, whatever
    ``on_error`` says: it is a typo, not a bad file.
    """
    collected = Collected()
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise MediaNotFoundError("no such file or folder; check the path", part=str(root))
    for root in roots:
        if root.is_dir():
            for found in walk_folder(root, recursive=True):
                if isinstance(found, MediaNotFoundError):
                    if on_error == "stop":
                        raise found
                    collected.failures.append(Failure(str(root), found))
                else:
                    _collect_file(found, collected, clip_seconds, on_error, explicit=False)
        else:
            _collect_file(root, collected, clip_seconds, on_error, explicit=True)
    return collected


def _collect_file(
    path: Path, collected: Collected, clip_seconds: float | None, on_error: OnError, explicit: bool
) -> None:
    source = str(path.resolve())
    try:
        items = _items_of(path, source, clip_seconds, explicit)
    except InputError as exc:
        if on_error == "stop":
            raise
        collected.failures.append(Failure(source, exc))
        return
    if items is None:
        collected.ignored.append(source)
    else:
        collected.items.extend(items)


def _items_of(
    path: Path, source: str, clip_seconds: float | None, explicit: bool
) -> list[Item] | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError as exc:
        raise MediaNotFoundError(f"cannot be read ({exc.strerror or exc})", part=str(path)) from exc
    image_format = sniff_image_format(head)
    if image_format is not None:
        return [_image_item(path, source, image_format)]
    video_format = sniff_video_format(head)
    if video_format is not None:
        return _video_items(path, source, video_format, clip_seconds)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return _text_items(path, source)
    if explicit:
        raise UnsupportedMediaError(
            "is not an image, a video or a text file (.txt, .md, .markdown, .rst)",
            part=str(path),
        )
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _image_item(path: Path, source: str, image_format: str) -> Item:
    from ._parts import Image

    metadata: dict[str, Any] = {
        "file_name": path.name,
        "mime_type": IMAGE_MIME_TYPES.get(image_format, f"image/{image_format}"),
        "bytes": path.stat().st_size,
    }
    size = _image_size(path)
    if size is not None:
        metadata["width"], metadata["height"] = size
    return Item(source, source, "image", _sha256(path), metadata, lambda: Image(path))


def _image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the image header, when Pillow is installed."""
    try:
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError
    except ImportError:
        return None
    try:
        with PILImage.open(path) as image:
            width, height = image.size
            return int(width), int(height)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _video_items(
    path: Path, source: str, video_format: str, clip_seconds: float | None
) -> list[Item]:
    sha = _sha256(path)
    base: dict[str, Any] = {
        "file_name": path.name,
        "mime_type": VIDEO_MIME_TYPES[video_format],
        "bytes": path.stat().st_size,
    }
    clips = _clips(path, clip_seconds)
    if clips is None:
        # Skip this file rather than stop the run at the first video.
        raise UnsupportedMediaError(
            "local videos are decoded with PyAV: pip install 'tongyi-vision[video]'",
            part=str(path),
        )
    items = []
    for clip in clips:
        metadata = {
            **base,
            "start_seconds": clip.start_seconds,
            "end_seconds": clip.end_seconds,
            "duration": clip.duration,
        }
        clip_id = f"{source}#t={clip.start_seconds:g},{clip.end_seconds:g}"
        items.append(Item(clip_id, source, "video", sha, metadata, clip.part))
    return items


def _clips(path: Path, clip_seconds: float | None) -> list[VideoClip] | None:
    """The clips of a local video, or ``None`` when video decoding (the extra) is missing."""
    from ._clips import iter_clips, video_decoding_available

    if not video_decoding_available():
        return None
    return list(iter_clips(path, DEFAULT_CLIP_SECONDS if clip_seconds is None else clip_seconds))


def _text_items(path: Path, source: str) -> list[Item]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaNotFoundError(f"cannot be read ({exc.strerror or exc})", part=str(path)) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaError("is not UTF-8 text", part=str(path)) from exc
    chunks = split_text(text)
    if not chunks:
        raise EmptyInputError("is an empty text file", part=str(path))
    sha = hashlib.sha256(data).hexdigest()
    items = []
    for number, chunk in enumerate(chunks):
        item_id = source if len(chunks) == 1 else f"{source}#chunk={number}"
        metadata = {"file_name": path.name, "chunk": number, "chunks": len(chunks), "text": chunk}
        items.append(Item(item_id, source, "text", sha, metadata, _constant(chunk)))
    return items


def _constant(text: str) -> Callable[[], Part]:
    return lambda: text


# --- embedding ---


class Reporter(Protocol):
    """Where an embed run reports progress and skipped items."""

    def started(self, total: int) -> None:
        """The run will embed ``total`` items."""

    def advanced(self, done: int) -> None:
        """``done`` items of the run are finished (embedded or failed)."""

    def skipped(self, failure: Failure) -> None:
        """An item failed and was skipped."""


class SilentReporter:
    """A :class:`Reporter` that says nothing."""

    def started(self, total: int) -> None:
        pass

    def advanced(self, done: int) -> None:
        pass

    def skipped(self, failure: Failure) -> None:
        pass


@dataclass
class EmbedRun:
    """What an embed run did."""

    embedded: dict[str, int] = field(default_factory=lambda: {"text": 0, "image": 0, "video": 0})
    already_done: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped: bool = False
    """An interrupt asked the run to stop after the chunk in flight."""

    @property
    def embedded_total(self) -> int:
        return sum(self.embedded.values())


# API errors about one request's content: other requests would fare differently, so an
# --on-error skip run isolates the bad parts and goes on. Every other API error (key,
# permission, model, rate limit or outage after retries) would hit every request alike.
_ITEM_ERRORS = (BadRequestError, RequestTooLargeError)


class Embedder:
    """Embeds items into an index in chunks, appending each chunk's records as it finishes."""

    def __init__(
        self,
        client: Client,
        writer: IndexWriter,
        *,
        on_error: OnError = "skip",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reporter: Reporter | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.client = client
        self.writer = writer
        self.on_error = on_error
        self.chunk_size = chunk_size
        self.reporter: Reporter = reporter or SilentReporter()
        self.should_stop = should_stop
        self.run = EmbedRun()
        self._done = 0

    def embed(self, items: Sequence[Item], index: Index | None) -> EmbedRun:
        """Embed every item not already in ``index``; raise on a failure ``on_error`` stops at."""
        todo = [item for item in items if index is None or not index.is_done(item)]
        self.run.already_done = len(items) - len(todo)
        self.reporter.started(len(todo))
        for start in range(0, len(todo), self.chunk_size):
            if self.should_stop():
                self.run.stopped = True
                break
            self._embed_group(todo[start : start + self.chunk_size])
        return self.run

    def _embed_group(self, items: list[Item]) -> None:
        if not items:
            return
        base = self._done

        def progress(event: ProgressEvent) -> None:
            self.reporter.advanced(base + event.parts_done)

        parts: list[Part] = []
        for position, item in enumerate(items):
            try:
                parts.append(item.part())
            except InputError as exc:
                self._refuse(item, exc)
                self._embed_group(items[:position] + items[position + 1 :])
                return
        try:
            result = self.client.embed(parts, progress=progress)
        except InputError as exc:
            if exc.part_index is None:
                raise
            bad = exc.part_index
            self._refuse(items[bad], exc)
            self._embed_group(items[:bad] + items[bad + 1 :])
            return
        except APIError as exc:
            partial = exc.partial
            finished = partial.vectors if partial is not None else [None] * len(items)
            self._save(
                [(item, v) for item, v in zip(items, finished, strict=True) if v is not None]
            )
            if self.on_error == "stop" or not isinstance(exc, _ITEM_ERRORS):
                raise
            missing = [i for i, v in enumerate(finished) if v is None]
            # The parts of the refused request; all missing ones if the error does not say.
            failed = set(exc.part_indexes).intersection(missing) or set(missing)
            suspects = [items[i] for i in missing if i in failed]
            if len(suspects) == 1:
                self._fail(suspects[0], exc)
            else:
                # One request of several parts was refused: find which, one part at a time.
                for suspect in suspects:
                    self._embed_group([suspect])
            self._embed_group([items[i] for i in missing if i not in failed])
            return
        self._save(list(zip(items, result.vectors, strict=True)))

    def _save(self, done: list[tuple[Item, list[float]]]) -> None:
        self.writer.append([item_record(item, vector) for item, vector in done])
        for item, _ in done:
            self.run.embedded[item.kind] += 1
        self._done += len(done)
        self.reporter.advanced(self._done)

    def _refuse(self, item: Item, exc: InputError) -> None:
        """An item the client refused before sending: skip it, or stop naming it in full."""
        named = named_input_error(exc, item.id)
        if self.on_error == "stop":
            raise named from exc
        self._fail(item, named)

    def _fail(self, item: Item, error: TongyiVisionError) -> None:
        failure = Failure(item.id, error)
        self.run.failures.append(failure)
        self.reporter.skipped(failure)
        self._done += 1
        self.reporter.advanced(self._done)


def named_input_error(exc: InputError, name: str) -> InputError:
    """``exc`` (same class, same reason) naming ``name`` in full instead of a part number."""
    try:
        named = type(exc)(exc.reason, part=name)
    except TypeError:  # a subclass with another constructor: keep it as it is
        return exc
    named.__cause__ = exc.__cause__
    return named


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
