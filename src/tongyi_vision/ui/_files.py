"""The files the page may show: an item's media file, found by the item's id in the index and
never by a path in a URL, and its thumbnail, made once and kept in a cache folder.

Each URL names an item by a token, the item's id in URL-safe base64: a token
that does not decode to the id of an image or video row of the index is not
found. The file served is the one the row points at, and only while its path
is still its real path: a folder or file swapped for a link after indexing
(pointing anywhere else) is not followed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..index import Row
from ..media import imaging
from ..media.sources import path_from, path_text
from ..wire.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

THUMBNAIL_SIDE = 320
"""The long side of a thumbnail, in pixels (the grid shows them at up to 320 px)."""
THUMBNAIL_QUALITY = 82
# Bumped whenever the recipe below changes what a thumbnail looks like: old ones are not reused.
THUMBNAIL_VERSION = 1
MEDIA_KINDS = ("image", "video")


def item_token(item_id: str) -> str:
    """The token that names an item in a URL: its id in URL-safe base64, unpadded."""
    raw = item_id.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def item_id_of(token: str) -> str | None:
    """The item id a token names, or ``None`` for a string that is no token."""
    if not token or len(token) > 16_384 or not token.isascii():
        return None
    if any(not (c.isalnum() or c in "-_") for c in token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return None


def media_path(row: Row) -> Path | None:
    """The file of an image or video row, if it may be served: the local file its reference
    names, at the path the index holds for it, still a regular file and still at its real
    path (no link anywhere on the way). ``None`` otherwise."""
    if row.kind not in MEDIA_KINDS or not row.content.startswith("file://"):
        return None
    path = path_from(row.content)
    text = os.fspath(path)
    if not os.path.isabs(text) or path_text(path) != row.source:
        return None
    if os.path.normpath(text) != text or os.path.realpath(text) != text:
        return None
    try:
        mode = os.lstat(text).st_mode
    except OSError:
        return None
    return path if stat.S_ISREG(mode) else None


def default_thumbnail_folder() -> Path:
    """Where thumbnails are kept unless told otherwise: ``$XDG_CACHE_HOME/tongyi-vision/
    thumbnails``, or ``~/.cache/tongyi-vision/thumbnails``.

    Outside the index: the page only reads an index (which may be read-only, shared, or
    being written by ``embed``), and thumbnails are named by the content's digest, so one
    cache serves every index that holds the same picture and survives rebuilding an index.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tongyi-vision" / "thumbnails"


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail on disk: its path and its size in pixels."""

    path: Path
    width: int
    height: int


class ThumbnailCache:
    """Thumbnails (JPEG, long side :data:`THUMBNAIL_SIDE` px) of images and of video clips (a
    frame from the middle of the clip), made once and kept in ``folder``.

    Named by the row's sha256 (the digest of its file's content) and, for a clip, its time
    range: the same picture in two indexes, or after an index is rebuilt, is one thumbnail.
    Each is written to a temporary name and renamed into place, so a reader never sees half
    of one; two requests for the same missing thumbnail make it once.
    """

    def __init__(self, folder: Path, *, side: int = THUMBNAIL_SIDE) -> None:
        self.folder = folder
        self.side = side
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def name(self, row: Row) -> str:
        """The file name of a row's thumbnail."""
        digest = row.sha256 if _is_digest(row.sha256) else _digest_of_id(row.id)
        clip = ""
        if row.kind == "video":
            clip = f"-t{row.start_seconds or 0:g}-{row.end_seconds or 0:g}"
        return f"{digest}{clip}-{self.side}-v{THUMBNAIL_VERSION}.jpg"

    def get(self, row: Row, path: Path) -> Thumbnail:
        """The thumbnail of ``row`` (whose file is ``path``), made now if it is not kept yet.

        Raises :class:`InputError` for a file that cannot be decoded.
        """
        name = self.name(row)
        target = self.folder / name[:2] / name
        with self._lock_for(name):
            if target.is_file():
                with imaging.open_image(target, description=name) as image:
                    return Thumbnail(target, int(image.width), int(image.height))
            data, width, height = self._make(row, path)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return Thumbnail(target, width, height)

    @contextmanager
    def _lock_for(self, name: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            yield
        with self._guard:
            if not lock.locked():
                self._locks.pop(name, None)

    def _make(self, row: Row, path: Path) -> tuple[bytes, int, int]:
        description = path_text(path)
        if row.kind == "video":
            from ..media.decoding import sample_frames

            frame = sample_frames(
                path, start=row.start_seconds, end=row.end_seconds, count=1, max_side=self.side
            )[0]
            return self._encode(frame.jpeg, description)
        return self._encode(path, description)

    def _encode(self, source: bytes | Path, description: str) -> tuple[bytes, int, int]:
        import io
        import warnings

        from PIL import ImageOps

        image = imaging.open_image(
            source if isinstance(source, bytes) else os.fspath(source), description=description
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "palette images with transparency"
                if image.format == "JPEG":
                    # Decode at the smallest scale that still covers the thumbnail: fast.
                    image.draft("RGB", (self.side, self.side))
                image.load()
                upright = ImageOps.exif_transpose(image) or image
                picture = _flattened(upright)
            picture.thumbnail((self.side, self.side))
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(
                f"cannot be decoded for a thumbnail ({exc})", part=description
            ) from exc
        finally:
            image.close()
        return buffer.getvalue(), picture.width, picture.height


def _flattened(image: PILImage) -> PILImage:
    """An RGB copy of a PIL image, transparent parts on white."""
    from PIL import Image as PILImageModule

    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # an animated image: its first frame
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = PILImageModule.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _digest_of_id(item_id: str) -> str:
    """A file name for a row without a content digest (an imported index): by its id."""
    return hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()
