"""Where media comes from: local paths, ``file://`` and data URIs, and safe names for them.

Every reading of a local file's first bytes goes through :func:`read_head`, and
every ``file://`` URI is made by :func:`file_uri` and read back by
:func:`path_from`, which round-trip file names that are not valid UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import re
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from ..wire.errors import EmptyInputError, InputError, MediaNotFoundError, UnsupportedMediaError
from ..wire.formats import HEAD_BYTES, VIDEO_MIME_TYPES, sniff_video_format


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as printable text: bytes of a name that is not UTF-8 are shown as ``\\xNN``.

    Python keeps such bytes as lone surrogates, which no UTF-8 stream, JSON
    encoder or terminal accepts; this text is safe everywhere a name is shown
    or stored as a label.
    """
    text = os.fspath(path)
    return os.fsencode(text).decode("utf-8", "backslashreplace") if _has_surrogates(text) else text


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def describe(value: str, limit: int = 48) -> str:
    """A short, safe description of a value for error messages (printable, even when the
    value holds lone surrogates)."""
    if value.startswith("data:"):
        head = value.split(",", 1)[0]
        return f"{head},... ({len(value):,} chars)"
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def describe_path(path: str | os.PathLike[str], limit: int = 72) -> str:
    """A path for error messages, shortened from the front so the file name stays."""
    value = path_text(path)
    return repr(value if len(value) <= limit else "..." + value[3 - limit :])


def is_url(value: str) -> bool:
    """An http(s) URL; schemes are case-insensitive, so ``HTTPS://...`` is one too."""
    return value[:8].lower().startswith(("http://", "https://"))


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def base64_length(size: int) -> int:
    """The length of ``size`` bytes in base64."""
    return (size + 2) // 3 * 4


def decode_data_uri(uri: str, description: str, *, medium: str) -> bytes:
    """The bytes of a base64 data URI; :class:`UnsupportedMediaError` if it is not one."""
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise UnsupportedMediaError(f"is not a base64 {medium} data URI", part=description)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedMediaError("has invalid base64", part=description) from exc


def file_uri(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URI of a local path (absolute, percent-encoded)."""
    return Path(path).resolve().as_uri()


def path_from(value: str | os.PathLike[str]) -> Path:
    """A local path from a path or a ``file://`` URI (its fragment, if any, is dropped)."""
    if isinstance(value, str) and value.startswith("file://"):
        parsed = urllib.parse.urlparse(value)
        if sys.platform == "win32":  # pragma: no cover - the project is tested on POSIX
            return Path(urllib.request.url2pathname(parsed.path))
        # surrogateescape: the bytes of a name that is not UTF-8 come back as they were
        return Path(urllib.parse.unquote(parsed.path, errors="surrogateescape"))
    return Path(value)


def read_head(path: Path, description: str, *, empty: bool = False) -> tuple[int, bytes]:
    """The size and first bytes of a local file, or the typed error that says why not
    (an empty file is one, :class:`EmptyInputError`, unless ``empty``)."""
    try:
        size = path.stat().st_size
        is_file = path.is_file()
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise MediaNotFoundError(
                "is a broken link: it points to a file that does not exist", part=description
            ) from exc
        raise MediaNotFoundError("file not found; check the path", part=description) from exc
    except OSError as exc:
        raise MediaNotFoundError(
            f"cannot be read ({exc.strerror or exc})", part=description
        ) from exc
    if not is_file:
        raise MediaNotFoundError("is not a file", part=description)
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except FileNotFoundError as exc:
        raise MediaNotFoundError("file not found; check the path", part=description) from exc
    except PermissionError as exc:
        raise MediaNotFoundError("cannot be read: permission denied", part=description) from exc
    except OSError as exc:
        raise MediaNotFoundError(
            f"cannot be read ({exc.strerror or exc})", part=description
        ) from exc
    if size == 0 and not empty:
        raise EmptyInputError("file is empty", part=description)
    return size, head


def sniff_video(head: bytes, size: int, description: str) -> str:
    """The container of a video from its first bytes; refuses one the service does not take."""
    if size == 0:
        raise EmptyInputError("video is empty", part=description)
    fmt = sniff_video_format(head)
    if fmt is None:
        raise UnsupportedMediaError(
            f"is not a video container the service takes ({', '.join(sorted(VIDEO_MIME_TYPES))})",
            part=description,
        )
    return fmt


def read_file(path: Path, description: str) -> bytes:
    """A local file's bytes, read when its request is built."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaNotFoundError(
            f"could not be read while sending ({exc.strerror or exc})", part=description
        ) from exc


_DIGESTS: dict[tuple[int, int, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()
_MAX_DIGESTS = 4096


def file_digest(path: Path, description: str = "") -> str:
    """The SHA-256 of a local file's content, read in blocks.

    Remembered by file (device and inode), size and modification time for the life of
    the process, so the clips of one video, or a file a loader already hashed, are read
    once.
    """
    try:
        stat = path.stat()
        memo = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with _DIGESTS_LOCK:
            known = _DIGESTS.get(memo)
        if known is not None:
            return known
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    except OSError as exc:
        raise MediaNotFoundError(
            f"cannot be read ({exc.strerror or exc})", part=description or path_text(path)
        ) from exc
    digest = hasher.hexdigest()
    with _DIGESTS_LOCK:
        if len(_DIGESTS) >= _MAX_DIGESTS:
            _DIGESTS.clear()
        _DIGESTS[memo] = digest
    return digest


# --- media fragments: the time range of a clip in a file:// URI ---


def format_seconds(value: float) -> str:
    """Seconds as a media fragment writes them: ``10``, ``2.5``, ``0.333``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _parse_time(text: str, fragment: str) -> float:
    text = text.strip()
    if text.startswith("npt:"):
        text = text[4:]
    clock = _CLOCK.match(text)
    try:
        if clock:
            hours, minutes, seconds = clock.groups()
            value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"the media fragment #{fragment} has an invalid time {text!r}; "
            "write #t=start,end in seconds, e.g. #t=10,20"
        )
    return value


def parse_time_fragment(fragment: str) -> tuple[float | None, float | None]:
    """The ``(start, end)`` of a W3C temporal media fragment, ``(None, None)`` without one.

    Accepts ``t=10,20``, ``t=10``, ``t=,20``, ``t=npt:10,20`` and clock times
    (``t=00:01:30,00:02:00``); other fragment keys are ignored.

    >>> parse_time_fragment("t=10,20")
    (10.0, 20.0)
    """
    for item in fragment.split("&"):
        key, _, value = item.partition("=")
        if key != "t":
            continue
        value = urllib.parse.unquote(value)
        first, _, second = value.partition(",")
        start = _parse_time(first, fragment) if first.strip() else None
        end = _parse_time(second, fragment) if second.strip() else None
        return start, end
    return None, None


def time_fragment_of(uri: str) -> tuple[float | None, float | None]:
    """The time range a ``file://`` URI's fragment selects, ``(None, None)`` without one."""
    return parse_time_fragment(urllib.parse.urldefrag(uri).fragment)
