"""Strings that stand for media: how documents made by the loaders travel through vector stores.

A LangChain or LlamaIndex document's text is a string. The loaders put a media
reference there (a ``file://`` URI, or a ``data:image/...`` / ``data:video/...``
URI), and the adapters turn such strings back into :class:`Image` or
:class:`Video` parts with :func:`text_or_media`; raw base64 of an image (what
Chroma's ``add_images`` stores as a document's text) is that image too. Plain
text, even text that looks like a path, stays text. A query goes through
:func:`query_part`, which reads no file unless asked. What the frameworks hand
an image method (a path, a URL, a data URI, raw base64, bytes) becomes a part
by :func:`image_input`. Content blocks (dicts) are taken everywhere. An image
reference with a ``#caption=`` fragment (:func:`captioned_reference`, what the
loaders make of a captioned image) is ONE :class:`Fused` part of the caption
and the image. What the fused methods take becomes :class:`Fused` parts by
:func:`fused_groups`. Both adapters use these rules and no other.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from ..wire.errors import EmptyInputError, InputError, UnsupportedMediaError
from ..wire.formats import sniff_image_format, sniff_video_format
from .blocks import block_part
from .catalogue import SUFFIXES
from .fused import Fused, FusedMember
from .image import Image, MultiImage
from .parts import Part
from .sources import describe, file_uri, path_from, read_head, time_fragment_of
from .video import Video

ImageInput = Union[str, "os.PathLike[str]", bytes, io.BytesIO, Mapping[str, Any]]
"""What the frameworks' image methods take: a path, a URI or URL, raw base64, bytes, BytesIO,
an image or video content block."""

# Raw base64 (what Chroma stores as an image document's text): the alphabet, padding and
# line breaks, long enough that a short word is never mistaken for an image.
_RAW_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]{16,}")
_URI_PREFIXES = ("data:", "http://", "https://", "file://")

CAPTION_FRAGMENT = "#caption="
"""The fragment that carries an image reference's caption:
``file:///photos/bike.jpg#caption=a%20red%20bicycle``."""
# Only these carry a caption: ``#`` is percent-encoded in a file URI's path and is not in
# base64, so the fragment cannot be part of the reference itself.
_CAPTIONED_PREFIXES = ("file://", "data:image/")

Captioner = Callable[[Path], "str | None"]
"""What the loaders' ``caption=`` takes: a function of an image's path that returns its
caption, or ``None`` (or an empty string) for an image without one."""

FusedInput = Union[
    str, Mapping[str, Any], Image, MultiImage, Video, "os.PathLike[str]", bytes, io.BytesIO
]
"""A member of a group given to a fused method: a string (text, or a media reference as a
text method reads it), a content block, a local image or video path, image bytes (or a
``BytesIO``), or a core part."""


def media_part(value: str, *, auto_fit: bool = True, files: bool = True) -> Image | Video | None:
    """The part a media reference stands for, or ``None`` if ``value`` is plain text.

    A ``data:image/...`` or ``data:video/...`` URI is that image or video. A
    ``file://`` URI (only with ``files``; without, it is text) is sniffed: an
    image or a video becomes that part; a missing or empty file, or one that is
    neither, raises a typed error rather than being embedded as the letters of
    its name. A video URI's media fragment selects a clip:
    ``file:///v.mp4#t=10,20`` is ``Video("/v.mp4", start=10, end=20)``.
    """
    if value.startswith("data:image/"):
        return Image(value, auto_fit=auto_fit)
    if value.startswith("data:video/"):
        return Video(value)
    if not files or not value.startswith("file://") or any(c in value for c in "\n\r"):
        return None
    path = path_from(value)
    description = describe(value, 80)
    try:
        _, head = read_head(path, description)
    except EmptyInputError as exc:
        raise EmptyInputError(
            "the media reference points to an empty file", part=description
        ) from exc
    except InputError as exc:
        raise type(exc)(
            f"the media reference points to a file that cannot be read ({exc.reason})",
            part=description,
        ) from exc
    if sniff_image_format(head) is not None:
        return Image(value, auto_fit=auto_fit)
    if sniff_video_format(head) is not None:
        start, end = time_fragment_of(value)
        return Video(path, start=start, end=end)
    raise UnsupportedMediaError(
        "the media reference points to a file that is neither an image nor a video",
        part=description,
    )


def text_or_media(
    value: str | Mapping[str, Any], *, auto_fit: bool = True, files: bool = True
) -> Part:
    """A string handed to a text method: the medium it references (a media URI, or raw
    base64 of an image; a captioned image reference, the fused caption and image), else the
    text itself (``files``: whether a ``file://`` URI may be read); a content block, what it
    describes."""
    if isinstance(value, Mapping):
        return block_part(value, auto_fit=auto_fit)
    if not isinstance(value, str):
        return value
    captioned = captioned_part(value, auto_fit=auto_fit, files=files)
    if captioned is not None:
        return captioned
    media = media_part(value, auto_fit=auto_fit, files=files)
    if media is not None:
        return media
    data = raw_base64_image(value)
    return Image(data, auto_fit=auto_fit) if data is not None else value


def query_part(value: str | Mapping[str, Any], *, auto_fit: bool = True, read_files: bool) -> Part:
    """A query handed to a text method: as :func:`text_or_media`, except for local files.

    Query text often comes from users, who must not make the process read local files, so
    a query that is a ``file://`` URI, or that looks like the path of an image or video
    file (one word ending in a media suffix), is read only with ``read_files``; without it
    the query is refused (nothing on disk is touched), not embedded as the letters of a
    file name. With ``read_files`` such a path is that image or video."""
    if not isinstance(value, str):
        return text_or_media(value, auto_fit=auto_fit, files=read_files)
    uri = _is_file_uri(value)
    if not (uri or _looks_like_media_path(value)):
        return text_or_media(value, auto_fit=auto_fit, files=read_files)
    if not read_files:
        what = "a file:// URI" if uri else "the path of an image or video file"
        raise InputError(
            f"the query is {what}, and queries read no local files unless asked: set "
            "read_query_files=True to query by that image or video, or pass it to the image "
            "method (embed_image / get_image_embedding)",
            part=describe(value, 80),
        )
    reference = value if uri else file_uri(os.path.abspath(value))
    return (
        captioned_part(reference, auto_fit=auto_fit)
        or media_part(reference, auto_fit=auto_fit)
        or value
    )


def _is_file_uri(value: str) -> bool:
    return value.startswith("file://") and not any(c in value for c in "\n\r")


def _looks_like_media_path(value: str) -> bool:
    """One word that names a file of a media suffix (``photos/cat.jpg``, ``/v/talk.mp4``);
    decided from the string alone, without touching the disk."""
    if not value or any(c.isspace() for c in value) or value.startswith(_URI_PREFIXES):
        return False
    suffix = os.path.splitext(value)[1].lower()
    return suffix in SUFFIXES["image"] or suffix in SUFFIXES["video"]


def strings(values: object, method: str) -> list[str | Mapping[str, Any]]:
    """The list of strings (or content blocks) a framework method was handed, or an
    :class:`InputError` (a lone string would otherwise be embedded one character at a time)."""
    if (
        values is None
        or isinstance(values, (str, bytes, Mapping))
        or not isinstance(values, Iterable)
    ):
        raise InputError(
            f"{method} takes a list of strings, not {type(values).__name__}; "
            f"wrap a single one in a list: {method}([text])"
        )
    listed = list(values)
    for index, value in enumerate(listed):
        if not isinstance(value, (str, Mapping)):
            raise InputError(
                f"{method} takes strings or content blocks (dicts), not {type(value).__name__}",
                part_index=index,
            )
    return listed


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
    if isinstance(value, Mapping):
        part = block_part(value, auto_fit=auto_fit)
        if isinstance(part, str):
            raise InputError("an image method takes image or video blocks, not a text block")
        return part
    if isinstance(value, io.BytesIO):
        return Image(value.getvalue(), auto_fit=auto_fit)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if value.startswith(("file://", "data:video/")):
            return media_part(value, auto_fit=auto_fit) or Image(value, auto_fit=auto_fit)
        if not value.startswith(_URI_PREFIXES):
            if not os.path.exists(value):
                data = raw_base64_image(value)
                if data is not None:
                    return Image(data, auto_fit=auto_fit)
            elif _is_video_file(Path(value)):
                return Video(value)
    return Image(value, auto_fit=auto_fit)


def video_input(value: str | os.PathLike[str] | Mapping[str, Any] | Video) -> Video:
    """The part a video method's input stands for: a URL, data URI or path, or a video
    content block."""
    if isinstance(value, Mapping):
        part = block_part(value)
        if not isinstance(part, Video):
            raise InputError("a video method takes video blocks, not text or image blocks")
        return part
    return value if isinstance(value, Video) else Video(value)


def _is_video_file(path: Path) -> bool:
    try:
        _, head = read_head(path, describe(str(path)))
    except InputError:
        return False  # the image part reports the file with its own error
    return sniff_video_format(head) is not None


def raw_base64_image(value: str) -> bytes | None:
    """The image bytes of a base64 string without a ``data:`` prefix, else ``None``."""
    if not _RAW_BASE64.fullmatch(value):
        return None
    try:
        data = base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if sniff_image_format(data[:64]) is not None else None


# --- captioned image references -------------------------------------------------------------


def captioned_reference(reference: str, caption: str) -> str:
    """An image's ``file://`` or ``data:image/`` reference carrying ``caption``, which the text
    methods embed as ONE fused vector of the caption and the image (see :func:`captioned_part`).

    >>> captioned_reference("file:///photos/bike.jpg", "a red bicycle, 100% steel")
    'file:///photos/bike.jpg#caption=a%20red%20bicycle%2C%20100%25%20steel'
    """
    return f"{reference}{CAPTION_FRAGMENT}{urllib.parse.quote(caption, safe='')}"


def split_caption(value: str) -> tuple[str, str | None]:
    """A captioned reference's image reference and its caption (unquoted), or ``(value,
    None)`` for a string that carries none (only ``file://`` and ``data:image/`` references
    do)."""
    if not value.startswith(_CAPTIONED_PREFIXES) or CAPTION_FRAGMENT not in value:
        return value, None
    reference, _, quoted = value.rpartition(CAPTION_FRAGMENT)
    return reference, urllib.parse.unquote(quoted)


def captioned_part(
    value: str, *, auto_fit: bool = True, files: bool = True
) -> Image | Video | Fused | None:
    """The part a captioned image reference stands for, ``Fused([caption, image])`` (the
    image alone when the caption is blank); ``None`` for any other string. ``files`` as for
    :func:`media_part`; a captioned ``file://`` reference to a missing file raises as there."""
    reference, caption = split_caption(value)
    if caption is None:
        return None
    media = media_part(reference, auto_fit=auto_fit, files=files)
    if media is None:
        return None
    return Fused([caption, media]) if caption.strip() else media


def checked_captioner(caption: object) -> Captioner | None:
    """A loader's ``caption=`` argument, or a ``TypeError`` saying what it takes."""
    if caption is not None and not callable(caption):
        raise TypeError(
            "caption must be a function of the image's path returning its caption (or "
            f"None), not {type(caption).__name__}; for fixed captions pass "
            "caption=lambda path: captions.get(path.name)"
        )
    return caption


def caption_for(captioner: Captioner | None, path: Path) -> str | None:
    """The caption ``captioner`` gives the image at ``path``: ``None`` without a captioner, or
    for an image it gives none (or a blank one); a ``TypeError`` if it returns no string."""
    if captioner is None:
        return None
    caption = captioner(path)
    if caption is not None and not isinstance(caption, str):
        raise TypeError(
            f"caption({str(path)!r}) returned a {type(caption).__name__}; it must return "
            "the caption as a str, or None for an image without one"
        )
    return caption if caption and caption.strip() else None


# --- fused groups ---------------------------------------------------------------------------


def fused_groups(groups: object, *, auto_fit: bool = True, method: str) -> list[Fused]:
    """The :class:`Fused` parts a fused method's list of groups stands for.

    A group is a :class:`Fused` or a list of :data:`FusedInput` members: a string is read as a
    text method reads it (a captioned image reference adds its caption and its image), a
    local path, bytes or a ``BytesIO`` as an image method does. An :class:`InputError` names
    the group (its position) and says what was wrong; ``method`` names the caller in it.

    >>> fused_groups([["a red bicycle", Path("bike.jpg")]], method="embed_fused")
    [Fused(['a red bicycle', Image('bike.jpg')])]
    """
    if isinstance(groups, (str, bytes, Mapping, Fused)) or not isinstance(groups, Sequence):
        raise InputError(
            f"{method} takes a list of groups, not {type(groups).__name__}; wrap one group in "
            f"a list: {method}([[text, image]])"
        )
    fused: list[Fused] = []
    for index, group in enumerate(groups):
        try:
            fused.append(group if isinstance(group, Fused) else _group(group, auto_fit))
        except InputError as exc:
            raise exc.at(index) from exc.__cause__
    return fused


def _group(group: object, auto_fit: bool) -> Fused:
    if isinstance(group, (str, bytes, Mapping)) or not isinstance(group, Sequence):
        raise InputError(
            f"a fused group is a list of parts, not {type(group).__name__}: [text, image, ...]"
        )
    return Fused([part for member in group for part in _members(member, auto_fit)])


def _members(member: object, auto_fit: bool) -> list[FusedMember]:
    """What one member of a group adds to it: itself as a part, or a captioned image
    reference's caption and image."""
    part: object = member
    if isinstance(member, (str, Mapping)):
        part = text_or_media(member, auto_fit=auto_fit)
    elif isinstance(member, (os.PathLike, bytes, io.BytesIO)):
        part = image_input(member, auto_fit=auto_fit)
    if isinstance(part, Fused) and isinstance(member, str):
        return list(part.parts)
    if not isinstance(part, (str, Image, MultiImage, Video)):
        raise InputError(
            f"a fused group holds texts, images and a video, not {type(member).__name__}"
        )
    return [part]
