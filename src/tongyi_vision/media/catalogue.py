"""The media-file catalogue: the one place that finds media files and says what each one is.

The CLI, the LangChain loaders, the LlamaIndex readers and the video listing all
find their files here, so the rules are written once:

- a path is a file, a folder (its files in name order; sub-folders too with
  ``recursive``) or a glob pattern (``**`` crosses folders);
- hidden files and folders are passed over unless asked for; a linked folder is
  never entered while walking (it could loop), and a link that loops or points
  nowhere is reported, not raised;
- a file is what its first bytes say (JPEG, PNG, MP4...), whatever its name;
  text files are told by their suffix;
- an image's header is read behind the decompression-bomb guard, so a bomb or a
  broken header is reported here, before anything is sent;
- a name that is not valid UTF-8 is shown with ``\\xNN`` escapes (:attr:`MediaFile.text`)
  and still reaches the file through :attr:`MediaFile.uri`.

:func:`scan` yields a :class:`MediaFile` per file and a :class:`SkippedFile` per problem;
:class:`Skips` turns the problems into warnings, errors or silence, as ``on_error`` says.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import warnings
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

from ..wire.errors import (
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    UnsupportedMediaError,
)
from ..wire.formats import (
    ANY_IMAGE_MIME_TYPES,
    HEAD_BYTES,
    VIDEO_MIME_TYPES,
    sniff_image_format,
    sniff_video_format,
)
from . import imaging
from .sources import file_digest, file_uri, path_text, read_head

MediaKind = Literal["image", "video", "text"]
OnError = Literal["warn", "raise", "ignore"]
"""What a loader or reader does with a file it skips: warn, raise its error, or say nothing."""
PathInput = Union[str, "os.PathLike[str]"]

ON_ERROR_CHOICES: tuple[OnError, ...] = ("warn", "raise", "ignore")
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
# Names that say "image" or "video": such a file that is not one is reported, not passed over.
SUFFIXES: dict[MediaKind, frozenset[str]] = {
    "image": frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}),
    "video": frozenset({".mp4", ".m4v", ".mov", ".mpeg", ".mpg", ".webm", ".avi", ".flv", ".mkv"}),
    "text": TEXT_SUFFIXES,
}
_GLOB_CHARS = frozenset("*?[")
_NOUNS = {
    "image": "an image",
    "video": "a video",
    "text": "a text file (.txt, .md, .markdown, .rst)",
}


@dataclass(frozen=True)
class SkippedFile:
    """A file, folder or pattern that gave nothing, and the typed error that says why."""

    path: str
    """The path or pattern as printable text."""
    error: InputError

    def __str__(self) -> str:
        return f"{self.path}: {self.error.reason}"


@dataclass(frozen=True)
class MediaFile:
    """One file the catalogue found, and what its first bytes say it is.

    ``kind`` is ``None`` for a file of none of the kinds asked for, found in a
    folder or by a pattern (a caller may count it or pass over it).
    ``width`` and ``height`` are read from an image's header when Pillow is
    installed. :meth:`digest` hashes the content when it is first asked for.
    """

    path: Path
    kind: MediaKind | None
    format: str | None
    """``jpeg``, ``png``, ..., ``mp4``, ``mkv``, ..., ``text``, or ``None``."""
    mime_type: str | None
    size: int
    width: int | None = None
    height: int | None = None
    explicit: bool = False
    """Named by the caller, rather than found in a folder or by a pattern."""
    _digest: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The path as printable text (``\\xNN`` for bytes of a name that is not UTF-8)."""
        return path_text(self.path)

    @property
    def uri(self) -> str:
        """The file's ``file://`` URI, which leads back to it whatever its name."""
        return file_uri(self.path)

    def digest(self) -> str:
        """The SHA-256 of the file's content (read once, in blocks)."""
        if not self._digest:
            self._digest.append(file_digest(self.path, self.text))
        return self._digest[0]


def scan(
    paths: PathInput | Iterable[PathInput],
    *,
    kinds: Collection[str] = ("image", "video"),
    pattern: str = "*",
    recursive: bool = False,
    hidden: bool = False,
    report_others: bool = False,
    verify: bool = False,
    measure: bool = True,
) -> Iterator[MediaFile | SkippedFile]:
    """One record per file under ``paths``, in a stable order.

    A file of one of ``kinds`` is a :class:`MediaFile`. A problem is a
    :class:`SkippedFile`: a path that names nothing, a pattern that matches
    nothing, a folder that cannot be listed, a link that loops or is broken, an
    empty or unreadable file, an image with a broken header or a header
    claiming a decompression bomb, a file named by the caller (or named like one
    of ``kinds``) that is not of them. Any other file found in a folder is a
    :class:`MediaFile` with ``kind=None``, or a :class:`SkippedFile` with
    ``report_others``. ``pattern`` picks names in folders (as in a shell, a
    wildcard does not match a leading dot); ``verify`` reads PNGs to their end.
    ``measure=False`` leaves an image's header unread (no ``width`` and ``height``, no check
    of the header): for a caller that reads it later, and only for the files it keeps.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    wanted = _kinds(kinds)
    for item in items:
        text = os.fspath(item)
        path = Path(text).expanduser()
        found: Iterable[Path | SkippedFile]
        if _GLOB_CHARS.intersection(text) and not os.path.lexists(path):
            matches = list(_glob(path, hidden))
            if not matches:
                yield _skipped(text, MediaNotFoundError("no file matches this pattern", part=""))
            found = (m for m in matches if isinstance(m, SkippedFile) or not _is_dir(m))
        elif _is_dir(path):
            found = _walk(path, pattern, recursive, hidden)
        elif os.path.lexists(path):
            yield _identify(path, wanted, True, True, verify, measure)
            continue
        else:
            yield _skipped(text, MediaNotFoundError("file not found; check the path", part=""))
            continue
        for entry in found:
            if isinstance(entry, SkippedFile):
                yield entry
            else:
                yield _identify(entry, wanted, False, report_others, verify, measure)


def inspect_bytes(data: bytes, name: str, kinds: Collection[str]) -> MediaFile | SkippedFile:
    """What in-memory bytes are (a blob without a file): the record :func:`scan` would give."""
    return _classify(
        Path(name), data[:HEAD_BYTES], len(data), _kinds(kinds), True, True, data, False
    )


def _kinds(kinds: Collection[str]) -> frozenset[MediaKind]:
    unknown = set(kinds) - set(SUFFIXES)
    if unknown or not kinds:
        raise ValueError(f"kinds are 'image', 'video' and 'text', not {sorted(unknown) or kinds!r}")
    return frozenset(kinds)  # type: ignore[arg-type]


# --- finding files ---


def _walk(
    folder: Path, pattern: str, recursive: bool, hidden: bool
) -> Iterator[Path | SkippedFile]:
    """The files of ``folder`` whose names match ``pattern``, sorted by name; sub-folders with
    ``recursive``, never through a link."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: os.fsencode(entry.name))
    except OSError as exc:
        yield _skipped(folder, _unreadable("folder cannot be listed", exc))
        return
    for entry in entries:
        shown = hidden or not entry.name.startswith(".")
        try:
            is_dir = entry.is_dir()
        except OSError as exc:  # a link that loops: ELOOP
            if shown:
                yield _skipped(entry.path, _unreadable("cannot be followed", exc))
            continue
        if is_dir:
            if recursive and shown and not entry.is_symlink():
                yield from _walk(Path(entry.path), pattern, recursive, hidden)
            continue
        wanted = (shown or pattern.startswith(".")) and fnmatch.fnmatch(entry.name, pattern)
        if wanted:
            yield Path(entry.path)


def _glob(pattern: Path, hidden: bool) -> Iterator[Path | SkippedFile]:
    """The paths a pattern matches, sorted, without duplicates; ``**`` is any number of
    folders, entered never through a link."""
    parts = pattern.parts
    first_magic = next(i for i, p in enumerate(parts) if _GLOB_CHARS.intersection(p))
    root = Path(*parts[:first_magic]) if first_magic else Path(".")
    seen: set[Path] = set()
    for match in _match(root, parts[first_magic:], hidden):
        if isinstance(match, SkippedFile):
            yield match
        elif match not in seen:
            seen.add(match)
            yield match


def _match(folder: Path, segments: tuple[str, ...], hidden: bool) -> Iterator[Path | SkippedFile]:
    if not segments:
        yield folder
        return
    segment, rest = segments[0], segments[1:]
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: os.fsencode(entry.name))
    except OSError as exc:
        if folder.exists():
            yield _skipped(folder, _unreadable("folder cannot be listed", exc))
        return
    if segment == "**":
        yield from _match(folder, rest, hidden)
    for entry in entries:
        if not (hidden or segment.startswith(".")) and entry.name.startswith("."):
            continue
        child = folder / entry.name
        if segment == "**":
            if _is_dir(child) and not entry.is_symlink():
                yield from _match(child, segments, hidden)
            elif not rest:
                yield child  # a trailing ** matches the files of every folder too
        elif fnmatch.fnmatch(entry.name, segment):
            if not rest:
                yield child
            elif _is_dir(child):
                yield from _match(child, rest, hidden)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a link that loops
        return False


# --- telling what a file is ---


def _identify(
    path: Path,
    wanted: frozenset[MediaKind],
    explicit: bool,
    report_others: bool,
    verify: bool,
    measure: bool = True,
) -> MediaFile | SkippedFile:
    try:
        size, head = read_head(path, "", empty=True)
    except InputError as exc:
        return _skipped(path, exc)
    return _classify(path, head, size, wanted, explicit, report_others, path, verify, measure)


def _classify(
    path: Path,
    head: bytes,
    size: int,
    wanted: frozenset[MediaKind],
    explicit: bool,
    report_others: bool,
    content: Path | bytes,
    verify: bool,
    measure: bool = True,
) -> MediaFile | SkippedFile:
    suffix = path.suffix.lower()
    named = any(suffix in SUFFIXES[kind] for kind in wanted)
    if size == 0:
        if explicit or named or report_others:
            return _skipped(path, EmptyInputError("file is empty", part=""))
        return MediaFile(path, None, None, None, 0, explicit=explicit)
    kind: MediaKind | None = None
    fmt = sniff_image_format(head)
    if fmt is not None:
        kind, mime = "image", ANY_IMAGE_MIME_TYPES[fmt]
    elif (fmt := sniff_video_format(head)) is not None:
        kind, mime = "video", VIDEO_MIME_TYPES[fmt]
    elif suffix in TEXT_SUFFIXES:
        kind, fmt, mime = "text", "text", "text/plain"
    if kind is None or kind not in wanted:
        if explicit or named or report_others:
            nouns = [_NOUNS[k] for k in sorted(wanted, key=list(_NOUNS).index)]
            what = " or ".join([", ".join(nouns[:-1]), nouns[-1]] if len(nouns) > 2 else nouns)
            if wanted == {"video"}:
                what = (
                    f"a video container the service takes ({', '.join(sorted(VIDEO_MIME_TYPES))})"
                )
            detail = (
                "its first bytes match no known format" if kind is None else f"it is {_NOUNS[kind]}"
            )
            return _skipped(path, UnsupportedMediaError(f"is not {what}; {detail}", part=""))
        return MediaFile(path, None, fmt, None, size, explicit=explicit)
    width = height = None
    if kind == "image" and measure and imaging.pillow_available():
        try:
            source = content if isinstance(content, bytes) else os.fspath(content)
            width, height = imaging.image_size(source, description="", verify=verify)
        except InputError as exc:
            return _skipped(path, exc)
    return MediaFile(path, kind, fmt, mime, size, width, height, explicit)


def _unreadable(reason: str, exc: OSError) -> MediaNotFoundError:
    return MediaNotFoundError(f"{reason} ({exc.strerror or exc})", part="")


def _skipped(path: PathInput, error: InputError) -> SkippedFile:
    """A skipped file whose error names it (as printable text), whatever raised it."""
    text = path_text(path)
    error.part = repr(text)
    error.args = (error._format(),)
    return SkippedFile(text, error)


# --- reporting what was skipped ---


def check_on_error(value: str) -> OnError:
    """``value`` if it is one of :data:`ON_ERROR_CHOICES`; else a :class:`ValueError`."""
    if value not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', not {value!r}")
    return value


@dataclass
class Skips:
    """What a loader or reader skipped, reported as its ``on_error`` says.

    ``"raise"`` raises the skipped file's typed error, ``"warn"`` warns with
    ``warning`` (a :class:`UserWarning` subclass naming the file and the
    reason), ``"ignore"`` says nothing; every skip is kept in :attr:`files`.
    Inside :meth:`summarised` (a whole load), the skips of that load make ONE
    warning at its end, however many files a mixed folder holds.
    """

    on_error: OnError
    warning: type[UserWarning]
    who: str
    files: list[SkippedFile] = field(default_factory=list)
    _held: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_on_error(self.on_error)

    def __call__(self, skipped: SkippedFile | InputError, where: str = "") -> None:
        if isinstance(skipped, InputError):
            skipped = SkippedFile(where or skipped.part.strip("'\""), skipped)
        if self.on_error == "raise":
            raise skipped.error
        self.files.append(skipped)
        if self.on_error == "warn" and self._held is None:
            warnings.warn(f"{self.who} skipped {skipped}", self.warning, stacklevel=4)

    @contextlib.contextmanager
    def summarised(self) -> Iterator[None]:
        """Hold the warnings of the skips made inside, and give one summary at the end."""
        if self._held is not None:  # already inside a load: its summary covers these
            yield
            return
        self._held = len(self.files)
        try:
            yield
        finally:
            skipped, self._held = self.files[self._held :], None
            if skipped and self.on_error == "warn":
                warnings.warn(summary(self.who, skipped), self.warning, stacklevel=3)


def summary(who: str, skipped: Sequence[SkippedFile], shown: int = 3) -> str:
    """One line for a load's skips: how many, the first few with their reasons."""
    count = len(skipped)
    listed = "; ".join(str(s) for s in skipped[:shown])
    more = f"; and {count - shown} more" if count > shown else ""
    noun = "file" if count == 1 else "files"
    return f"{who} skipped {count} {noun}: {listed}{more} (all of them, with reasons, in .errors)"
