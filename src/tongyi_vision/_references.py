"""Strings that stand for media: how documents made by the loaders travel through vector stores.

A LangChain or LlamaIndex document's text is a string. The loaders put a media
reference there (a ``file://`` URI, or a ``data:image/...`` / ``data:video/...``
URI), and the adapters turn such strings back into :class:`Image` or
:class:`Video` parts with :func:`media_part`. Plain text, even text that looks
like a path, stays text.
"""

from __future__ import annotations

import urllib.parse

from ._exceptions import MediaNotFoundError
from ._limits import sniff_image_format, sniff_video_format
from ._parts import Image, _path_from
from ._video import Video, parse_time_fragment

_HEAD = 64


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
    path = _path_from(urllib.parse.urldefrag(value).url)
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError as exc:
        raise MediaNotFoundError(
            f"the media reference points to a file that cannot be read ({exc.strerror or exc})",
            part=repr(value[:80]),
        ) from exc
    if sniff_image_format(head) is not None:
        return Image(value, auto_fit=auto_fit)
    if sniff_video_format(head) is not None:
        start, end = parse_time_fragment(urllib.parse.urldefrag(value).fragment)
        return Video(path, start=start, end=end)
    return None


def file_uri(path: str) -> str:
    """The ``file://`` URI of a local path (absolute, percent-encoded)."""
    from pathlib import Path

    return Path(path).resolve().as_uri()
