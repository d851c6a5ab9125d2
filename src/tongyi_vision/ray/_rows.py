"""What one cell of a dataset stands for: the part it is embedded as.

A Ray dataset hands the embedder columns of plain values: strings (texts, paths,
URLs, ``file://`` and ``data:`` references, clip references), bytes (what
``ray.data.read_binary_files`` reads), numpy arrays (the HWC ``uint8`` pictures of
``ray.data.read_images``), content blocks (dicts) or parts built by the caller.
:func:`row_part` turns one such value into a part of an embed call, on the worker;
the rules for strings are the media references' own
(:func:`~tongyi_vision.media.references.query_part`, with files readable), and bytes
are told by their first bytes, as everywhere else.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

from ..media import imaging
from ..media.blocks import block_part
from ..media.catalogue import SUFFIXES
from ..media.fused import Fused
from ..media.image import Image, MultiImage, is_pil
from ..media.parts import Part
from ..media.references import query_part
from ..media.sources import file_uri, is_url, parse_time_fragment
from ..media.video import Video
from ..wire.errors import ConfigurationError, EmptyInputError, InputError, UnsupportedMediaError
from ..wire.formats import HEAD_BYTES, sniff_image_format, sniff_video_format

RowKind = Literal["auto", "text", "image", "video"]
"""How a row's value is read: decided per row (``"auto"``), or always as that kind."""
ROW_KINDS: tuple[RowKind, ...] = ("auto", "text", "image", "video")
_CLIP_FRAGMENT = "#t="


def check_kind(
    kind: object, name: str = "kind", error: type[Exception] = ConfigurationError
) -> RowKind:
    """``kind`` if it is one of :data:`ROW_KINDS`; else ``error`` saying which are."""
    if kind not in ROW_KINDS:
        raise error(f"{name} must be 'auto', 'text', 'image' or 'video', not {kind!r}")
    return kind


def row_part(value: object, kind: RowKind = "auto", *, auto_fit: bool = True) -> Part:
    """The part one cell stands for; an :class:`InputError` naming what is wrong with it.

    With ``kind="auto"``:

    - a ``str`` is read as the text methods of the adapters read it, with local files
      allowed: a ``file://`` or ``data:`` reference (a video's with ``#t=START,END``, a
      clip), raw base64 of an image, or one word naming a local image or video file
      (``photos/cat.jpg``, ``/videos/talk.mp4#t=10,20``) is that medium; an http(s)
      URL is a video when its path ends like one (``.mp4``, ...), else an image;
      anything else is text;
    - bytes are an image or a video, as their first bytes say; bytes that are neither but
      are UTF-8 text are read as that ``str`` (a column mixing texts or paths with image
      bytes reaches the workers as binary: Arrow stores the strings as bytes);
    - a numpy array (``ray.data.read_images``: height x width [x channels], uint8) or
      a PIL image is an image;
    - a dict is a content block (``{"type": "image", "url": ...}``);
    - an :class:`Image`, :class:`Video`, :class:`MultiImage` or :class:`Fused` is itself.

    ``kind="text"``, ``"image"`` or ``"video"`` reads the value as that kind only
    (a text that looks like a path stays text).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise EmptyInputError("the row has no value to embed (null)")
    if isinstance(value, (Image, Video, MultiImage, Fused)):
        return value
    if kind == "text":
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = _text_of(bytes(value)) or value
        if not isinstance(value, str):
            raise InputError(f"kind 'text' takes strings, not {_type_name(value)}")
        return value
    if _is_array(value) or is_pil(value):
        if kind == "video":
            raise InputError("kind 'video' takes a path, URL, reference or bytes, not pixels")
        picture: Any = value if is_pil(value) else pil_of(value)
        return Image(picture, auto_fit=auto_fit)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_part(bytes(value), kind, auto_fit)
    if isinstance(value, Mapping):
        return block_part(value, auto_fit=auto_fit)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InputError(
            "a row holds a text, a path, URL or media reference, image or video bytes, an "
            f"image array, a content block or a part, not {_type_name(value)}"
        )
    if kind == "image":
        return Image(value, auto_fit=auto_fit)
    if kind == "video":
        return Video(clip_reference(value) or value)
    if is_url(value):
        return Video(value) if _url_suffix(value) in SUFFIXES["video"] else Image(value)
    return query_part(clip_reference(value) or value, auto_fit=auto_fit, read_files=True)


def clip_reference(value: str) -> str | None:
    """The ``file://`` reference of a local clip written as a path with a time fragment
    (``/videos/talk.mp4#t=10,20``), or ``None`` for any other string."""
    if value.startswith(("file://", "data:")) or is_url(value) or _CLIP_FRAGMENT not in value:
        return None
    path, _, fragment = value.partition("#")
    if not path or any(c.isspace() for c in path):
        return None
    if os.path.splitext(path)[1].lower() not in SUFFIXES["video"]:
        return None
    parse_time_fragment(fragment)  # an invalid time is an InputError naming the fragment
    return f"{file_uri(os.path.abspath(path))}#{fragment}"


def pil_of(array: Any) -> Any:
    """A PIL image of a numpy picture: height x width (grey), or x 1, 3 (RGB) or 4 (RGBA)
    channels, of ``uint8`` (Pillow: the ``image`` extra)."""
    shape = tuple(getattr(array, "shape", ()))
    dtype = str(getattr(array, "dtype", ""))
    channels = shape[2] if len(shape) == 3 else None
    if len(shape) not in (2, 3) or channels not in (None, 1, 3, 4) or 0 in shape:
        raise InputError(
            f"an image array is height x width [x 1, 3 or 4 channels], not of shape {shape}"
        )
    if dtype != "uint8":
        raise InputError(
            f"an image array holds uint8 pixels (as ray.data.read_images gives), not {dtype}; "
            "convert it with array.astype('uint8') after scaling to 0-255"
        )
    pil = imaging.require_pillow("An image given as a numpy array")
    if channels == 1:
        array = array[:, :, 0]
    imaging.check_pixels(shape[1], shape[0], f"<array {shape[1]}x{shape[0]}>")
    return pil.fromarray(array)


def _bytes_part(data: bytes, kind: RowKind, auto_fit: bool) -> Part:
    if not data:
        raise EmptyInputError("the row's bytes are empty")
    if kind == "image":
        return Image(data, auto_fit=auto_fit)
    if kind == "video":
        return Video(data)
    head = data[:HEAD_BYTES]
    if sniff_image_format(head) is not None:
        return Image(data, auto_fit=auto_fit)
    if sniff_video_format(head) is not None:
        return Video(data)
    text = _text_of(data)
    if text is not None:
        return row_part(text, "auto", auto_fit=auto_fit)
    raise UnsupportedMediaError(
        f"the row's {len(data):,} bytes are neither an image nor a video (their first bytes "
        "match no known format); give kind='text' for text, or decode them first"
    )


def _text_of(data: bytes) -> str | None:
    """``data`` as text if it is UTF-8 with no NUL character, else ``None``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _url_suffix(url: str) -> str:
    return os.path.splitext(urllib.parse.urlsplit(url).path)[1].lower()


def _is_array(value: object) -> bool:
    # by name: numpy comes with Ray Data, and its scalars (np.str_) are not pictures
    return type(value).__name__ == "ndarray" and type(value).__module__ == "numpy"


def _type_name(value: object) -> str:
    return type(value).__name__
