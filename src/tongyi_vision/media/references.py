"""Strings that stand for media: how documents made by the loaders travel through vector stores.

A LangChain or LlamaIndex document's text is a string. The loaders put a media
reference there (a ``file://`` URI, or a ``data:image/...`` / ``data:video/...``
URI), and the adapters turn such strings back into :class:`Image` or
:class:`Video` parts with :func:`text_or_media`. Plain text, even text that
looks like a path, stays text. What the frameworks hand an image method (a
path, a URL, a data URI, raw base64, bytes) becomes a part by :func:`image_input`.
Both adapters use these two rules and no other.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from pathlib import Path
from typing import Union

from ..wire.errors import EmptyInputError, InputError, MediaNotFoundError
from ..wire.formats import sniff_image_format, sniff_video_format
from .image import Image
from .parts import Part
from .sources import describe, path_from, read_head, time_fragment_of
from .video import Video

ImageInput = Union[str, "os.PathLike[str]", bytes, io.BytesIO]
"""What the frameworks' image methods take: a path, a URI or URL, raw base64, bytes, BytesIO."""

# Raw base64 (what Chroma stores as an image document's text): the alphabet, padding and
# line breaks, long enough that a short word is never mistaken for an image.
_RAW_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]{16,}")
_URI_PREFIXES = ("data:", "http://", "https://", "file://")


def media_part(value: str, *, auto_fit: bool = True) -> Image | Video | None:
    """The part a media reference stands for, or ``None`` if ``value`` is plain text.

    A ``file://`` URI is sniffed: an image or a video becomes that part, any
    other file stays text. A ``file://`` URI of a missing file raises
    :class:`MediaNotFoundError` rather than being embedded as text. A video
    URI's media fragment selects a clip: ``file:///v.mp4#t=10,20`` is
    ``Video("/v.mp4", start=10, end=20)``.
    """
    if value.startswith("data:image/"):
        return Image(value, auto_fit=auto_fit)
    if value.startswith("data:video/"):
        return Video(value)
    if not value.startswith("file://") or any(c in value for c in "\n\r"):
        return None
    path = path_from(value)
    try:
        _, head = read_head(path, describe(value, 80))
    except EmptyInputError:
        return None  # an empty file is no medium: its reference stays text
    except MediaNotFoundError as exc:
        raise MediaNotFoundError(
            f"the media reference points to a file that cannot be read ({exc.reason})",
            part=exc.part,
        ) from exc
    if sniff_image_format(head) is not None:
        return Image(value, auto_fit=auto_fit)
    if sniff_video_format(head) is not None:
        start, end = time_fragment_of(value)
        return Video(path, start=start, end=end)
    return None


def text_or_media(value: str, *, auto_fit: bool = True) -> Part:
    """A string handed to a text method: the medium it references, else the text itself."""
    media = media_part(value, auto_fit=auto_fit) if isinstance(value, str) else None
    return media if media is not None else value


def image_input(value: ImageInput | Image | Video, *, auto_fit: bool = True) -> Image | Video:
    """The part an image method's input stands for.

    A ``BytesIO`` is its whole content (wherever its read position is); raw
    base64 without a ``data:`` prefix is decoded; a ``file://`` reference or a
    local path whose file turns out to be a video is that video (a
    ``file:///v.mp4#t=10,20`` reference, that clip). Anything else is an
    :class:`Image`, whose checks name a missing or unreadable file.
    """
    if isinstance(value, (Image, Video)):
        return value
    if isinstance(value, io.BytesIO):
        return Image(value.getvalue(), auto_fit=auto_fit)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if value.startswith(("file://", "data:video/")):
            return media_part(value, auto_fit=auto_fit) or Image(value, auto_fit=auto_fit)
        if not value.startswith(_URI_PREFIXES):
            if not os.path.exists(value):
                data = _raw_base64_image(value)
                if data is not None:
                    return Image(data, auto_fit=auto_fit)
            elif _is_video_file(Path(value)):
                return Video(value)
    return Image(value, auto_fit=auto_fit)


def _is_video_file(path: Path) -> bool:
    try:
        _, head = read_head(path, describe(str(path)))
    except InputError:
        return False  # the image part reports the file with its own error
    return sniff_video_format(head) is not None


def _raw_base64_image(value: str) -> bytes | None:
    """The image bytes of a base64 string without a ``data:`` prefix, else ``None``."""
    if not _RAW_BASE64.fullmatch(value):
        return None
    try:
        data = base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if sniff_image_format(data[:64]) is not None else None
