"""Multimodal content blocks, the dicts chat models take, as parts.

LangChain's standard blocks (``{"type": "image", "url": ...}``,
``{"type": "image", "base64": ..., "mime_type": ...}``, the same for
``"video"``, and ``{"type": "text", "text": ...}``), their older form with
``source_type`` and ``data``, and OpenAI's ``{"type": "image_url",
"image_url": {"url": ...}}`` become the :class:`Image`, :class:`Video` or text
they describe, so that what a multimodal prompt holds can be embedded as it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ..wire.errors import InputError, UnsupportedMediaError
from .image import Image
from .video import Video

ContentBlock = Mapping[str, Any]
"""A multimodal content block: a mapping with a ``"type"`` of text, image or video."""

_KINDS = ("text", "image", "video", "image_url")


def block_part(block: ContentBlock, *, auto_fit: bool = True) -> str | Image | Video:
    """The text, :class:`Image` or :class:`Video` a content block describes."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise InputError("a text block needs a 'text' string", part=_describe(block))
        return text
    if kind == "image_url":  # OpenAI's chat form
        inner = block.get("image_url")
        url = inner.get("url") if isinstance(inner, Mapping) else inner
        if not isinstance(url, str):
            raise InputError("an image_url block needs a URL string", part=_describe(block))
        return Image(url, auto_fit=auto_fit)
    if kind not in ("image", "video"):
        raise InputError(
            f"a content block of type {kind!r} cannot be embedded; blocks of type "
            f"{', '.join(map(repr, _KINDS))} can",
            part=_describe(block),
        )
    source = _source(block, kind)
    if kind == "image":
        return Image(source, auto_fit=auto_fit)
    return Video(source)


def _source(block: ContentBlock, kind: str) -> str | bytes:
    """A block's URL, or its base64 data decoded, from either the current or the older
    (``source_type`` / ``data``) form."""
    source_type = block.get("source_type")
    url = block.get("url")
    data = block.get("base64")
    if source_type == "url":
        url = block.get("url", block.get("data"))
    elif source_type == "base64":
        data = block.get("data", data)
    if isinstance(url, str) and url:
        return url
    if isinstance(data, str) and data:
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UnsupportedMediaError(
                f"the {kind} block's base64 data is not valid base64", part=_describe(block)
            ) from None
        if kind == "video":
            # The service takes video as a URL or a data URI, not raw bytes in a body.
            mime = block.get("mime_type") or "video/mp4"
            return f"data:{mime};base64,{data}"
        return decoded
    if block.get("file_id") or source_type == "id":
        raise UnsupportedMediaError(
            f"the {kind} block names a provider's file id, which this service cannot fetch; "
            "give its url or base64 data",
            part=_describe(block),
        )
    raise InputError(f"the {kind} block has neither a url nor base64 data", part=_describe(block))


def _describe(block: ContentBlock) -> str:
    """A short, safe description of a block (never its data)."""
    keys = ", ".join(sorted(str(k) for k in block))
    return f"content block (type {block.get('type')!r}; keys {keys})"
