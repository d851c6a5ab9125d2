"""Images: :class:`Image` (one picture, one vector) and :class:`MultiImage` (up to eight, one
vector), from paths, URLs, data URIs, bytes, file objects and PIL images."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..wire.errors import (
    CorruptMediaError,
    EmptyInputError,
    InputError,
    MediaTooLargeError,
    TooManyImagesError,
    UnsupportedMediaError,
)
from ..wire.formats import HEAD_BYTES, IMAGE_MIME_TYPES, sniff_image_format
from ..wire.limits import MAX_IMAGE_BYTES, MAX_IMAGES_PER_GROUP, parameter_problem
from . import imaging
from .prepared import (
    DATA_URI_OVERHEAD,
    IMAGE_PARAMETERS,
    Content,
    Prepared,
    constant,
    digest,
    finish,
    with_options,
)
from .sources import (
    base64_length,
    data_uri,
    decode_data_uri,
    describe,
    describe_path,
    file_digest,
    is_url,
    path_from,
    read_file,
    read_head,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, io.IOBase, "PILImage"]


class Image:
    """An image: a local path (or ``file://`` URI), an http(s) URL, a data URI, bytes,
    a binary file object, or a PIL image.

    Local and in-memory images must be JPEG, PNG or BMP of at most 3 MB. With
    ``auto_fit`` (the default) and Pillow installed, other formats (WEBP, GIF,
    TIFF, ...) and larger images are re-encoded to fit, keeping their aspect
    ratio and the best quality under the limit. URLs are passed to the service
    as they are.

    ``res_level`` (0-3, dated snapshots only) sets this image's resolution tier,
    over the client's: about 127, 402, 578 or 1,026 tokens per image; the
    service's default is 1.

    >>> Image("photos/bike.jpg"), Image("https://example.com/bike.png"), Image(png_bytes)
    >>> Image("chart.png", res_level=3)
    """

    __slots__ = ("_pil", "auto_fit", "res_level", "source")

    def __init__(
        self, source: ImageSource, *, auto_fit: bool = True, res_level: int | None = None
    ) -> None:
        self.res_level = _res_level(res_level)
        self.auto_fit = auto_fit
        self._pil: PILImage | None = None
        if isinstance(source, (bytearray, memoryview)):
            source = bytes(source)
        elif isinstance(source, io.IOBase):
            source = source.read()
            if not isinstance(source, bytes):
                raise InputError("a file object given to Image must be opened in binary mode")
        elif not isinstance(source, (str, bytes, os.PathLike)):
            if is_pil(source):
                self._pil = source
            else:
                raise InputError(
                    f"Image takes a path, URL, data URI, bytes, file object or PIL image, "
                    f"not {type(source).__name__}"
                )
        self.source: str | os.PathLike[str] | bytes | PILImage = source

    def __repr__(self) -> str:
        source = self.source
        level = "" if self.res_level is None else f", res_level={self.res_level}"
        if isinstance(source, bytes):
            return f"Image(<{len(source):,} bytes>{level})"
        if self._pil is not None or not isinstance(source, (str, os.PathLike)):
            what = f"<PIL {self._pil.width}x{self._pil.height}>" if self._pil else ""
            return f"Image({what}{level})"
        return f"Image({describe(os.fspath(source))}{level})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image) or other.res_level != self.res_level:
            return False
        if self._pil is not None or other._pil is not None:
            # PIL images are mutable: the same object, not equal pixels, makes equal parts
            return self._pil is other._pil
        return other.source == self.source

    def __hash__(self) -> int:
        source = id(self._pil) if self._pil is not None else self.source
        return hash(("image", source, self.res_level))

    def prepare(self, *, defer_checks: bool = False) -> Prepared:
        """Check the image and return how to load it; raises :class:`InputError` subclasses.

        With ``defer_checks`` the costly check (decoding the header) is left to the
        returned part's ``check``, which the client runs for the parts it sends.
        """
        part = replace(self._prepare(), uses=IMAGE_PARAMETERS)
        return finish(with_options(part, res_level=self.res_level), defer_checks)

    def _prepare(self) -> Prepared:
        source = self.source
        if self._pil is not None:
            return self._from_pil(self._pil)
        if isinstance(source, bytes):
            return self._from_bytes(
                source, sniff_image_format(source[:HEAD_BYTES]), f"<{len(source):,} bytes>"
            )
        text = os.fspath(source)  # type: ignore[arg-type]
        if is_url(text):
            return constant("image", "i:" + text, describe(text), {"image": text}, "url:" + text)
        if text.startswith("data:"):
            return self._from_data_uri(text)
        return self._from_path(path_from(text))

    def reference(self) -> str:
        """The image as the service takes it: its URL, or a data URI (loads the image)."""
        return str(self.prepare().load()["image"])

    def _from_data_uri(self, uri: str) -> Prepared:
        description = describe(uri)
        if not uri.startswith("data:image/"):
            raise UnsupportedMediaError(
                "is not a base64 image data URI (data:image/...;base64,...)", part=description
            )
        data = decode_data_uri(uri, description, medium="image")
        fmt = sniff_image_format(data[:HEAD_BYTES])
        if (
            fmt in IMAGE_MIME_TYPES
            and len(data) <= MAX_IMAGE_BYTES
            and uri.partition(";")[0] == "data:" + IMAGE_MIME_TYPES[fmt]
        ):
            # Already in the service's form: send the caller's string unchanged, once it is
            # known to decode.
            key = "i:" + hashlib.sha256(uri.encode()).hexdigest()
            part = constant("image", key, description, {"image": uri}, "i:" + digest(data))
            return replace(part, check=lambda: _check_decodes(data, fmt, description))
        # A mislabelled type, another format or too large: re-encode from the bytes.
        return self._from_bytes(data, fmt, description)

    def _from_bytes(self, data: bytes, fmt: str | None, description: str) -> Prepared:
        if not data:
            raise EmptyInputError("image is empty", part=description)
        key = "i:" + digest(data)
        return self._inline(key, description, fmt, len(data), lambda: data, data, lambda: key)

    def _from_path(self, path: Path) -> Prepared:
        description = describe_path(path)
        size, head = read_head(path, description)
        stat = path.stat()
        # the file itself (not its name): links to it are one part
        key = f"p:{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
        return self._inline(
            key,
            description,
            sniff_image_format(head),
            size,
            lambda: read_file(path, description),
            path,
            lambda: "i:" + file_digest(path, description),
        )

    def _inline(
        self,
        key: str,
        description: str,
        fmt: str | None,
        size: int,
        read: Callable[[], bytes],
        source: bytes | Path,
        identity: Callable[[], str],
    ) -> Prepared:
        """An image sent as a data URI: as it is if the service takes it, else re-encoded.
        Either way it is known to decode before any request of the call is sent."""
        if fmt in IMAGE_MIME_TYPES and size <= MAX_IMAGE_BYTES:
            mime = IMAGE_MIME_TYPES[fmt]
            return Prepared(
                "image",
                key,
                description,
                base64_length(size) + DATA_URI_OVERHEAD,
                1,
                0,
                lambda: {"image": data_uri(mime, read())},
                identity,
                lambda: _check_decodes(source, fmt, description),
            )
        self._check_fit(fmt, size, description, source, cheap=True)
        return Prepared(
            "image",
            key,
            description,
            base64_length(MAX_IMAGE_BYTES) + DATA_URI_OVERHEAD,
            1,
            0,
            lambda: {"image": self._fit(read(), description)},
            # what is sent is our re-encoding: its rules are part of what makes the vector
            lambda: f"{identity()}:fit{imaging.FIT_VERSION}",
            lambda: self._check_fit(fmt, size, description, source),
        )

    def _from_pil(self, pil: PILImage) -> Prepared:
        """A PIL image: checked for size now, encoded (PNG, or fitted) when its request is."""
        description = f"<PIL {pil.width}x{pil.height}>"
        imaging.check_pixels(pil.width, pil.height, description)

        def load() -> Content:
            data, _ = imaging.encode_pil(pil)
            if len(data) <= MAX_IMAGE_BYTES:
                return {"image": data_uri("image/png", data)}
            return {"image": self._fit(data, description)}

        def identity() -> str:
            pixels = f"{pil.mode}:{pil.width}x{pil.height}:".encode() + pil.tobytes()
            return f"i:pil:{digest(pixels)}:fit{imaging.FIT_VERSION}"

        # PIL images are mutable: the same object, not equal pixels, makes equal parts.
        hint = base64_length(MAX_IMAGE_BYTES) + DATA_URI_OVERHEAD
        return Prepared("image", f"pil:{id(pil)}", description, hint, 1, 0, load, identity)

    def _check_fit(
        self,
        fmt: str | None,
        size: int,
        description: str,
        source: bytes | Path,
        *,
        cheap: bool = False,
    ) -> None:
        """Raise unless the image can be re-encoded to fit.

        Pillow decodes it cheaply here (see :func:`imaging.image_size`), so a
        file it cannot decode, or a decompression bomb, is refused before any
        request is sent; with ``cheap``, only what needs no decoding is checked
        (the rest is the part's ``check``).
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
        if not imaging.pillow_available():
            raise error(
                f"{problem}; install Pillow to convert it automatically: "
                "pip install 'tongyi-vision[image]'",
                part=description,
            )
        if cheap:
            return
        try:
            imaging.image_size(source, description=description, verify=True)
        except CorruptMediaError as exc:
            if fmt is None or fmt in ("heif", "avif"):
                raise UnsupportedMediaError(
                    f"is {'not an image in a format' if fmt is None else fmt.upper()} "
                    "this Pillow can read; the service takes JPEG, PNG or BMP: convert it"
                    + (" (or install a Pillow plugin for it)" if fmt else ""),
                    part=description,
                ) from exc
            raise

    def _fit(self, data: bytes, description: str) -> str:
        fitted, fmt = imaging.fit_image(data, max_bytes=MAX_IMAGE_BYTES, description=description)
        return data_uri(IMAGE_MIME_TYPES[fmt], fitted)


def _check_decodes(source: bytes | Path, fmt: str, description: str) -> None:
    """Refuse a JPEG, PNG or BMP that is cut short or corrupt, or claims too many pixels:
    decoded cheaply with Pillow, or its bytes' structure checked without it."""
    if imaging.pillow_available():
        imaging.image_size(source, description=description, verify=True)
    else:
        imaging.check_structure(source, fmt, description)


def _res_level(value: int | None) -> int | None:
    problem = None if value is None else parameter_problem("res_level", value)
    if problem:
        raise InputError(problem)
    return value


def common_res_level(levels: Sequence[int | None], part: object) -> int | None:
    """The one resolution tier images sent in one content share; several differing ones
    are refused, since one content object goes in one request with one ``res_level``."""
    given = sorted({level for level in levels if level is not None})
    if len(given) > 1:
        raise InputError(
            f"its images ask for res_level {' and '.join(map(str, given))}; images in one "
            "content share one tier: give them the same res_level",
            part=repr(part),
        )
    return given[0] if given else None


def is_pil(value: object) -> bool:
    module = type(value).__module__
    return module.startswith("PIL.") and hasattr(value, "save")


class MultiImage:
    """Up to eight images embedded together into ONE vector.

    ``res_level`` (dated snapshots only) is the group's resolution tier; its images'
    own ``res_level``, if set, must agree with it (one content, one tier).

    >>> MultiImage(["front.jpg", "back.jpg"])
    """

    __slots__ = ("images", "res_level")

    def __init__(
        self, images: Sequence[Image | ImageSource], *, res_level: int | None = None
    ) -> None:
        if isinstance(images, (str, bytes)):
            raise InputError("MultiImage takes a list of images, not a single one")
        self.images = [i if isinstance(i, Image) else Image(i) for i in images]
        self.res_level = _res_level(res_level)

    def __repr__(self) -> str:
        level = "" if self.res_level is None else f", res_level={self.res_level}"
        return f"MultiImage({self.images!r}{level})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MultiImage)
            and other.images == self.images
            and other.res_level == self.res_level
        )

    def __hash__(self) -> int:
        return hash(("multi", tuple(self.images), self.res_level))

    def group_res_level(self) -> int | None:
        """The group's resolution tier: its own, or the one its images agree on."""
        return common_res_level([self.res_level, *(i.res_level for i in self.images)], self)

    def prepare(self, *, defer_checks: bool = False) -> Prepared:
        """Check the images and return how to load them (see :meth:`Image.prepare`)."""
        level = self.group_res_level()
        part = replace(self._prepare(), uses=IMAGE_PARAMETERS)
        return finish(with_options(part, res_level=level), defer_checks)

    def _prepare(self) -> Prepared:
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
                prepared.append(image.prepare(defer_checks=True))
            except InputError as exc:
                exc.part = f"image {position} of MultiImage ({exc.part})"
                exc.args = (exc._format(),)
                raise
        key = "m:" + "|".join(p.key for p in prepared)

        def load() -> Content:
            return {"multi_images": [p.load()["image"] for p in prepared]}

        def identity() -> str:
            members = [p.identity() for p in prepared]
            remote = any(m.startswith("url:") for m in members)
            return ("url:" if remote else "") + "m:" + "|".join(members)

        def check() -> None:
            for position, part in enumerate(prepared):
                try:
                    part.check()
                except InputError as exc:
                    exc.part = f"image {position} of MultiImage ({exc.part})"
                    exc.args = (exc._format(),)
                    raise

        return Prepared(
            "multi_images",
            key,
            f"MultiImage(<{count} images>)",
            sum(p.size_hint for p in prepared),
            count,
            0,
            load,
            identity,
            check,
        )
