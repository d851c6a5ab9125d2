"""A part checked and ready to load into a request; and text, the simplest part.

Each part is checked cheaply when a call starts (files exist, formats sniffed
from magic bytes, sizes within the limits), before any request is sent. The
expensive work (reading, re-encoding, base64) happens only when the request
that carries the part is built, so a call over thousands of files keeps only
the requests in flight in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..wire.errors import EmptyInputError, InputError, TextTooLongError
from ..wire.limits import MAX_TEXT_TOKENS, estimate_text_tokens
from .sources import describe

Kind = Literal["text", "image", "video", "multi_images", "fused"]
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
    content. ``identity`` names the content itself, wherever it came from (a
    digest of a text's or a file's bytes, plus what changes the vector, such as
    a clip's time range), for the embedding cache; it is computed only when
    asked for (it may read a file), and starts with ``url:`` for content the
    service downloads, whose bytes the client never sees. ``check`` is the
    costly part of the checks (decoding an image's header, opening a video's
    container): the client runs it before anything is sent, for the parts it
    is going to send, not for those the cache serves.

    ``uses`` names the native parameters that change this part's vector
    (``res_level`` for images, ``fps`` and ``max_video_frames`` for a video the
    service samples), ``options`` the values the part itself sets for them (the
    client's settings fill in the rest), and ``videos`` counts the videos the
    service samples (for the token estimate).
    """

    kind: Kind
    key: str
    description: str
    size_hint: int
    images: int
    text_tokens: int
    load: Callable[[], Content]
    identity: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)
    check: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)
    uses: frozenset[str] = frozenset()
    options: tuple[tuple[str, Any], ...] = ()
    videos: int = 0


IMAGE_PARAMETERS = frozenset({"res_level"})
VIDEO_PARAMETERS = frozenset({"fps", "max_video_frames"})


def constant(kind: Kind, key: str, description: str, content: Content, identity: str) -> Prepared:
    """A part whose content is already in the service's form (a URL, a data URI)."""
    value = next(iter(content.values()))
    size = len(value) + VALUE_OVERHEAD if isinstance(value, str) else VALUE_OVERHEAD
    images = 1 if kind == "image" else 0
    uses = IMAGE_PARAMETERS if kind == "image" else VIDEO_PARAMETERS if kind == "video" else None
    return Prepared(
        kind,
        key,
        description,
        size,
        images,
        0,
        lambda: content,
        lambda: identity,
        uses=uses or frozenset(),
        videos=1 if kind == "video" else 0,
    )


def with_options(part: Prepared, **options: Any) -> Prepared:
    """A prepared part carrying the parameter values its part sets (``None``: not set)."""
    given = tuple(sorted((k, v) for k, v in options.items() if v is not None))
    return replace(part, options=given) if given else part


def _checked() -> None:
    """The check of a part already checked."""


def finish(part: Prepared, defer_checks: bool) -> Prepared:
    """A prepared part with its costly check run now, or left to the caller."""
    if defer_checks:
        return part
    part.check()
    return replace(part, check=_checked)


def digest(data: bytes) -> str:
    """The hex SHA-256 of some bytes: how the cache names content."""
    return hashlib.sha256(data).hexdigest()


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
        identity=lambda: "t:" + digest(text.encode("utf-8")),
    )
