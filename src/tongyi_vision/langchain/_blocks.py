"""Retrieved documents as content blocks a multimodal chat model can see.

An image hit's ``page_content`` is a ``file://`` URI (or a ``data:`` URI, or
raw base64 when Chroma's ``add_images`` stored it): a chat model can read
none of the first, and takes the others only as content blocks. This turns
each document into LangChain's standard block, so a retriever's hits go
straight into a prompt:

>>> docs = retriever.invoke("a red bicycle")
>>> message = HumanMessage(content=[{"type": "text", "text": question}, *to_content_blocks(docs)])
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from ..media.references import media_part, raw_base64_image, split_caption
from ..media.sources import is_url, path_from, read_file
from ..media.video import Video
from ..wire.errors import InputError
from ..wire.formats import CONVERTIBLE_IMAGE_MIME_TYPES, IMAGE_MIME_TYPES, sniff_image_format
from ..wire.limits import MAX_IMAGE_BYTES

ContentBlock = dict[str, Any]


def to_content_blocks(
    documents: Iterable[Document], *, text: bool = True, max_image_bytes: int = MAX_IMAGE_BYTES * 4
) -> list[ContentBlock]:
    """One standard content block per document, for a multimodal chat prompt.

    - an image document (``file://`` or ``data:image`` URI, raw base64 of an
      image): ``{"type": "image", "base64": ..., "mime_type": ...}``, the file
      read now; an http(s) image URL: ``{"type": "image", "url": ...}``;
    - a captioned image document (``TongyiImageLoader(caption=...)``): its image
      block, then a text block holding the caption;
    - a video clip with a ``thumbnail_path`` (``TongyiVideoLoader(thumbnails_dir=...)``):
      its thumbnail as an image block, then a text block naming the clip and its times;
    - anything else: ``{"type": "text", "text": page_content}``, or nothing when
      ``text=False``.

    An image larger than ``max_image_bytes`` is passed over as text (its reference),
    so one huge file cannot blow a prompt's size.
    """
    blocks: list[ContentBlock] = []
    for document in documents:
        blocks.extend(_blocks(document, text, max_image_bytes))
    return blocks


def _blocks(document: Document, text: bool, max_bytes: int) -> list[ContentBlock]:
    content = document.page_content
    metadata = document.metadata
    if is_url(content) and str(metadata.get("mime_type", "")).startswith("image/"):
        return [{"type": "image", "url": content}]
    reference, caption = split_caption(content)
    image = _image_bytes(reference)
    if image is not None and len(image) <= max_bytes:
        # the caption goes with its image, as a clip's times with its thumbnail (text or not)
        said = [{"type": "text", "text": caption}] if caption and caption.strip() else []
        return [_image_block(image), *said]
    thumbnail = metadata.get("thumbnail_path")
    if isinstance(thumbnail, str) and _is_clip(content):
        data = _file_bytes(Path(thumbnail))
        if data is not None and len(data) <= max_bytes:
            start, end = metadata.get("start_seconds"), metadata.get("end_seconds")
            where = f"{metadata.get('source', content)}, {start}-{end} s"
            return [_image_block(data), {"type": "text", "text": f"(video clip: {where})"}]
    return [{"type": "text", "text": content}] if text and content else []


def _image_bytes(content: str) -> bytes | None:
    """The image a document's text stands for, read or decoded; ``None`` if it is not one."""
    try:
        part = media_part(content)
    except InputError:  # a reference to a file gone since: shown as text
        return None
    if part is None:
        return raw_base64_image(content)
    if isinstance(part, Video):
        return None
    if content.startswith("data:"):
        _, _, payload = content.partition(",")
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            return None
    return _file_bytes(path_from(content))


def _file_bytes(path: Path) -> bytes | None:
    try:
        return read_file(path, str(path))
    except InputError:
        return None


def _image_block(data: bytes) -> ContentBlock:
    fmt = sniff_image_format(data[:64])
    known = {**IMAGE_MIME_TYPES, **CONVERTIBLE_IMAGE_MIME_TYPES}
    mime = known.get(fmt or "", "application/octet-stream")
    return {"type": "image", "base64": base64.b64encode(data).decode("ascii"), "mime_type": mime}


def _is_clip(content: str) -> bool:
    return content.startswith("file://") and "#t=" in content
