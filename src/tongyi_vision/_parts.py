"""The inputs of an embed call: text, :class:`Image`, :class:`Video`, :class:`MultiImage`.

Each part is checked cheaply when a call starts (files exist, formats sniffed
from magic bytes, sizes within the limits), before any request is sent. The
expensive work (reading, re-encoding, base64) happens only when the request
that carries the part is built, so a call over thousands of files keeps only
the requests in flight in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from . import _imaging
from ._exceptions import (
    CorruptMediaError,
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    MediaTooLargeError,
    TextTooLongError,
    TooManyImagesError,
    UnsupportedMediaError,
)
from ._limits import (
    IMAGE_MIME_TYPES,
    MAX_IMAGE_BYTES,
    MAX_IMAGES_PER_GROUP,
    MAX_TEXT_TOKENS,
    estimate_text_tokens,
    sniff_image_format,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from ._video import Video

Kind = Literal["text", "image", "video", "multi_images"]
Content = dict[str, Any]
_HEAD = 64


@dataclass(frozen=True)
class Prepared:
    """A part checked and ready to be loaded into a request.

    ``key`` identifies equal parts within a call (they are sent once);
    ``size_hint`` is the part's estimated size in the request body; ``images``
    counts against the per-request image limit; ``load`` builds the native
    content (``{"text": ...}``, ``{"image": ...}``, ...).
    """

    kind: Kind
    key: str
    description: str
    size_hint: int
    images: int
    text_tokens: int
    load: Callable[[], Content]


def describe(value: str, limit: int = 48) -> str:
    """A short, safe description of a value for error messages."""
    if value.startswith("data:"):
        head = value.split(",", 1)[0]
        return f"{head},... ({len(value):,} chars)"
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def describe_path(path: Path, limit: int = 60) -> str:
    """A path for error messages, shortened from the front so the file name stays."""
    value = str(path)
    return repr(value if len(value) <= limit else "..." + value[3 - limit :])


def prepare_text(text: str) -> Prepared:
    if not text.strip():
        raise EmptyInputError("text is empty; the service refuses empty input", part=describe(text))
    tokens = estimate_text_tokens(text)
    if tokens > MAX_TEXT_TOKENS:
        raise TextTooLongError(
            f"is about {tokens:,} tokens, over the {MAX_TEXT_TOKENS:,}-token limit "
            "(an estimate that errs high: one token per CJK character, digit or other "
            "non-ASCII character, one per 3 other characters); "
            "split it into smaller chunks",
            part=describe(text),
        )
    return Prepared(
        kind="text",
        key="t:" + text,
        description=describe(text),
        # as JSON: quotes and escapes included
        size_hint=len(json.dumps(text, ensure_ascii=False).encode()) + 16,
        images=0,
        text_tokens=tokens,
        load=lambda: {"text": text},
    )


def _is_url(value: str) -> bool:
    # URL schemes are case-insensitive: HTTPS://... is a URL, not a relative path
    return value[:8].lower().startswith(("http://", "https://"))


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _b64_len(n: int) -> int:
    return (n + 2) // 3 * 4


def _path_from(value: str | os.PathLike[str]) -> Path:
    if isinstance(value, str) and value.startswith("file://"):
        parsed = urllib.parse.urlparse(value)
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(value)


def _read_head(path: Path, description: str) -> tuple[int, bytes]:
    try:
        size = path.stat().st_size
        is_file = path.is_file()
    except FileNotFoundError as exc:
        raise MediaNotFoundError("file not found; check the path", part=description) from exc
    except OSError as exc:
        raise MediaNotFoundError(
            f"cannot be read ({exc.strerror or exc})", part=description
        ) from exc
    if not is_file:
        raise MediaNotFoundError("is not a file", part=description)
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
    except FileNotFoundError as exc:
        raise MediaNotFoundError("file not found; check the path", part=description) from exc
    except PermissionError as exc:
        raise MediaNotFoundError("cannot be read: permission denied", part=description) from exc
    except OSError as exc:
        raise MediaNotFoundError(
            f"cannot be read ({exc.strerror or exc})", part=description
        ) from exc
    if size == 0:
        raise EmptyInputError("file is empty", part=description)
    return size, head


def _read_file(path: Path, description: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaNotFoundError(
            f"could not be read while sending ({exc.strerror or exc})", part=description
        ) from exc


ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, io.IOBase, "PILImage"]


class Image:
    """An image: a local path (or ``file://`` URI), an http(s) URL, a data URI, bytes,
    a binary file object, or a PIL image.

    Local and in-memory images must be JPEG, PNG or BMP of at most 3 MB. With
    ``auto_fit`` (the default) and Pillow installed, other formats (WEBP, GIF,
    TIFF, ...) and larger images are re-encoded to fit, keeping their aspect
    ratio and the best quality under the limit. URLs are passed to the service
    as they are.

    >>> Image("photos/bike.jpg"), Image("https://example.com/bike.png"), Image(png_bytes)
    """

    __slots__ = ("_pil", "auto_fit", "source")

    def __init__(self, source: ImageSource, *, auto_fit: bool = True) -> None:
        self.auto_fit = auto_fit
        self._pil: PILImage | None = None
        if isinstance(source, (bytearray, memoryview)):
            source = bytes(source)
        elif isinstance(source, io.IOBase):
            source = source.read()
            if not isinstance(source, bytes):
                raise InputError("a file object given to Image must be opened in binary mode")
        elif not isinstance(source, (str, bytes, os.PathLike)):
            if _is_pil(source):
                self._pil = source
            else:
                raise InputError(
                    f"Image takes a path, URL, data URI, bytes, file object or PIL image, "
                    f"not {type(source).__name__}"
                )
        self.source: str | os.PathLike[str] | bytes | PILImage = source

    def __repr__(self) -> str:
        source = self.source
        if isinstance(source, bytes):
            return f"Image(<{len(source):,} bytes>)"
        if self._pil is not None or not isinstance(source, (str, os.PathLike)):
            return f"Image(<PIL {self._pil.width}x{self._pil.height}>)" if self._pil else "Image()"
        return f"Image({describe(os.fspath(source))})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return False
        if self._pil is not None or other._pil is not None:
            # PIL images are mutable: the same object, not equal pixels, makes equal parts
            return self._pil is other._pil
        return other.source == self.source

    def __hash__(self) -> int:
        return hash(("image", id(self._pil) if self._pil is not None else self.source))

    def prepare(self) -> Prepared:
        """Check the image and return how to load it; raises :class:`InputError` subclasses."""
        url = self._reference()
        if url is not None:
            return Prepared(
                "image", "i:" + url, describe(url), len(url) + 16, 1, 0, lambda: {"image": url}
            )
        return self._prepare_inline()

    def reference(self) -> str:
        """The image as the service takes it: its URL, or a data URI (loads the image)."""
        return str(self.prepare().load()["image"])

    def _reference(self) -> str | None:
        if isinstance(self.source, str) and _is_url(self.source):
            return self.source
        return None

    def _prepare_inline(self) -> Prepared:
        source = self.source
        if self._pil is not None:
            data, fmt = _imaging.encode_pil(self._pil)
            return self._from_bytes(data, fmt, f"<PIL {self._pil.width}x{self._pil.height}>")
        if isinstance(source, bytes):
            return self._from_bytes(
                source, sniff_image_format(source[:_HEAD]), f"<{len(source):,} bytes>"
            )
        assert isinstance(source, (str, os.PathLike))
        text = os.fspath(source)
        if text.startswith("data:"):
            return self._from_data_uri(text)
        return self._from_path(_path_from(source))

    def _from_data_uri(self, uri: str) -> Prepared:
        description = describe(uri)
        header, _, payload = uri.partition(",")
        if not header.startswith("data:image/") or ";base64" not in header:
            raise UnsupportedMediaError(
                "is not a base64 image data URI (data:image/...;base64,...)", part=description
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UnsupportedMediaError("has invalid base64", part=description) from exc
        fmt = sniff_image_format(data[:_HEAD])
        if (
            fmt in IMAGE_MIME_TYPES
            and len(data) <= MAX_IMAGE_BYTES
            and header.split(";")[0] == "data:" + IMAGE_MIME_TYPES[fmt]
        ):
            # Already in the service's form: send the caller's string unchanged.
            key = "i:" + hashlib.sha256(uri.encode()).hexdigest()
            return Prepared("image", key, description, len(uri) + 16, 1, 0, lambda: {"image": uri})
        # A mislabelled type, another format or too large: re-encode from the bytes.
        return self._from_bytes(data, fmt, description)

    def _from_bytes(self, data: bytes, fmt: str | None, description: str) -> Prepared:
        if not data:
            raise EmptyInputError("image is empty", part=description)
        key = "i:" + hashlib.sha256(data).hexdigest()
        if fmt in IMAGE_MIME_TYPES and len(data) <= MAX_IMAGE_BYTES:
            mime = IMAGE_MIME_TYPES[fmt]
            return Prepared(
                "image",
                key,
                description,
                _b64_len(len(data)) + 40,
                1,
                0,
                lambda: {"image": _data_uri(mime, data)},
            )
        self._check_fit(fmt, len(data), description, data)
        return Prepared(
            "image",
            key,
            description,
            _b64_len(MAX_IMAGE_BYTES) + 40,
            1,
            0,
            lambda: {"image": self._fit(data, description)},
        )

    def _from_path(self, path: Path) -> Prepared:
        description = describe_path(path)
        size, head = _read_head(path, description)
        fmt = sniff_image_format(head)
        stat = path.stat()
        key = f"p:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if fmt in IMAGE_MIME_TYPES and size <= MAX_IMAGE_BYTES:
            mime = IMAGE_MIME_TYPES[fmt]
            return Prepared(
                "image",
                key,
                description,
                _b64_len(size) + 40,
                1,
                0,
                lambda: {"image": _data_uri(mime, _read_file(path, description))},
            )
        self._check_fit(fmt, size, description, path)
        return Prepared(
            "image",
            key,
            description,
            _b64_len(MAX_IMAGE_BYTES) + 40,
            1,
            0,
            lambda: {"image": self._fit(_read_file(path, description), description)},
        )

    def _check_fit(
        self, fmt: str | None, size: int, description: str, source: bytes | Path
    ) -> None:
        """Raise unless the image can be re-encoded to fit.

        Pillow reads only the header here, so a file it cannot decode, or a
        decompression bomb, is refused before any request is sent.
        """
        if fmt in IMAGE_MIME_TYPES:
            problem = f"is {size:,} bytes, over the {MAX_IMAGE_BYTES:,}-byte (3 MB) limit"
            error: type[InputError] = MediaTooLargeError
        else:
            name = fmt.upper() if fmt else "not a recognised image format"
            problem = f"is {name}; the service takes JPEG, PNG or BMP"
            error = UnsupportedMediaError
        if not self.auto_fit:
            raise error(f"{problem}; convert it, or pass auto_fit=True", part=description)
        if not _imaging.pillow_available():
            raise error(
                f"{problem}; install Pillow to convert it automatically: "
                "pip install 'tongyi-vision[image]'",
                part=description,
            )
        try:
            probe = _imaging.open_image(
                source if isinstance(source, bytes) else str(source), description=description
            )
        except CorruptMediaError as exc:
            if fmt is None:
                raise UnsupportedMediaError(
                    "is not an image in a format Pillow can read; the service takes JPEG, "
                    "PNG or BMP",
                    part=description,
                ) from exc
            raise
        probe.close()

    def _fit(self, data: bytes, description: str) -> str:
        fitted, fmt = _imaging.fit_image(data, max_bytes=MAX_IMAGE_BYTES, description=description)
        return _data_uri(IMAGE_MIME_TYPES[fmt], fitted)


def _is_pil(value: object) -> bool:
    module = type(value).__module__
    return module.startswith("PIL.") and hasattr(value, "save")


class MultiImage:
    """Up to eight images embedded together into ONE vector.

    >>> MultiImage(["front.jpg", "back.jpg"])
    """

    __slots__ = ("images",)

    def __init__(self, images: Sequence[Image | ImageSource]) -> None:
        if isinstance(images, (str, bytes)):
            raise InputError("MultiImage takes a list of images, not a single one")
        self.images = [i if isinstance(i, Image) else Image(i) for i in images]

    def __repr__(self) -> str:
        return f"MultiImage({self.images!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiImage) and other.images == self.images

    def __hash__(self) -> int:
        return hash(("multi", tuple(self.images)))

    def prepare(self) -> Prepared:
        count = len(self.images)
        if count == 0:
            raise EmptyInputError("MultiImage has no images", part="MultiImage([])")
        if count > MAX_IMAGES_PER_GROUP:
            raise TooManyImagesError(
                f"has {count} images; at most {MAX_IMAGES_PER_GROUP} make one vector. "
                "Split it into several MultiImage parts",
                part=f"MultiImage(<{count} images>)",
            )
        prepared = []
        for position, image in enumerate(self.images):
            try:
                prepared.append(image.prepare())
            except InputError as exc:
                exc.part = f"image {position} of MultiImage ({exc.part})"
                exc.args = (exc._format(),)
                raise
        key = "m:" + "|".join(p.key for p in prepared)

        def load() -> Content:
            return {"multi_images": [p.load()["image"] for p in prepared]}

        return Prepared(
            "multi_images",
            key,
            f"MultiImage(<{count} images>)",
            sum(p.size_hint for p in prepared),
            count,
            0,
            load,
        )


Part = Union[str, Image, "Video", MultiImage]


def prepare_part(part: object) -> Prepared:
    """Check one part of a call; raises an :class:`InputError` naming what is wrong."""
    from ._video import Video

    if isinstance(part, str):
        return prepare_text(part)
    if isinstance(part, (Image, Video, MultiImage)):
        return part.prepare()
    if _is_pil(part):
        return Image(part).prepare()  # type: ignore[arg-type]
    raise InputError(
        f"a part must be a str (text), Image, Video or MultiImage, not {type(part).__name__}; "
        "wrap bytes or paths in Image(...) or Video(...)"
    )
