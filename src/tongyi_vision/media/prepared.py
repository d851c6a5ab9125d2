"""A part checked and ready to load into a request; and text, the simplest part.

Each part is checked cheaply when a call starts (files exist, formats sniffed
from magic bytes, sizes within the limits), before any request is sent. The
expensive work (reading, re-encoding, base64) happens only when the request
that carries the part is built, so a call over thousands of files keeps only
the requests in flight in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..wire.errors import EmptyInputError, InputError, TextTooLongError
from ..wire.limits import MAX_TEXT_TOKENS, estimate_text_tokens
from .sources import describe

Kind = Literal["text", "image", "video", "multi_images"]
Content = dict[str, Any]
"""A native content: ``{"text": ...}``, ``{"image": ...}``, ``{"video": ...}`` or
``{"multi_images": [...]}``."""

# What a data URI adds to its base64 payload, and JSON quotes around a value.
DATA_URI_OVERHEAD = 40
VALUE_OVERHEAD = 16


@dataclass(frozen=True)
class Prepared:
    """A part checked and ready to be loaded into a request.

    ``key`` identifies equal parts within a call (they are sent once);
    ``size_hint`` is the part's estimated size in the request body; ``images``
    counts against the per-request image limit; ``load`` builds the native
    content.
    """

    kind: Kind
    key: str
    description: str
    size_hint: int
    images: int
    text_tokens: int
    load: Callable[[], Content]


def constant(kind: Kind, key: str, description: str, content: Content) -> Prepared:
    """A part whose content is already in the service's form (a URL, a data URI)."""
    value = next(iter(content.values()))
    size = len(value) + VALUE_OVERHEAD if isinstance(value, str) else VALUE_OVERHEAD
    return Prepared(kind, key, description, size, 1 if kind == "image" else 0, 0, lambda: content)


def prepare_text(text: str) -> Prepared:
    """Check a text part: not empty, and within the token limit by the estimate."""
    if not text.strip():
        raise EmptyInputError("text is empty; the service refuses empty input", part=describe(text))
    try:
        # as JSON: quotes and escapes included
        size = len(json.dumps(text, ensure_ascii=False).encode())
    except UnicodeEncodeError as exc:
        raise InputError(
            f"has a lone surrogate ({text[exc.start]!r}) at position {exc.start}, which is not "
            "text; decode the source with errors='replace' or drop the character",
            part=describe(text),
        ) from None
    tokens = estimate_text_tokens(text)
    if tokens > MAX_TEXT_TOKENS:
        raise TextTooLongError(
            f"is about {tokens:,} tokens by the estimate, over the {MAX_TEXT_TOKENS:,}-token "
            "limit; split it into smaller chunks, or let the client do it with "
            "long_text='split' (embeds the pieces and averages them) or 'truncate'",
            part=describe(text),
        )
    return Prepared(
        kind="text",
        key="t:" + text,
        description=describe(text),
        size_hint=size + VALUE_OVERHEAD,
        images=0,
        text_tokens=tokens,
        load=lambda: {"text": text},
    )
