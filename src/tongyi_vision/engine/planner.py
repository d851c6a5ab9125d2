"""Packing the parts of a call into requests within the service's limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..media.prepared import Prepared

# Room for the JSON around the parts (model name, keys, parameters), so a request's
# body stays under the byte cap, not just the sum of its parts.
ENVELOPE_BYTES = 256


@dataclass
class Batch:
    """One request's worth of unique parts: ``items`` index the call's unique parts;
    ``parameters`` are the native parameters every one of them is sent with (beyond
    ``dimension``); ``tokens`` their estimated tokens."""

    items: list[int]
    size: int = 0
    images: int = 0
    has_media: bool = False
    text_tokens: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


@dataclass(frozen=True)
class Limits:
    """What one request may carry: parts, images, bytes of body and estimated tokens
    (``None``: no token budget)."""

    max_parts: int
    max_images: int
    max_bytes: int
    max_tokens: int | None = None


@dataclass
class Plan:
    """Unique parts of a call, who owns each one, and the batches that carry them."""

    unique: list[Prepared]
    owners: list[list[int]]
    batches: list[Batch]


def dedupe(prepared: Sequence[tuple[int, Prepared]]) -> tuple[list[Prepared], list[list[int]]]:
    """Collapse equal parts: each unique part once, with the call indexes that want it."""
    unique: list[Prepared] = []
    owners: list[list[int]] = []
    seen: dict[str, int] = {}
    for index, part in prepared:
        position = seen.get(part.key)
        if position is None:
            seen[part.key] = len(unique)
            unique.append(part)
            owners.append([index])
        else:
            owners[position].append(index)
    return unique, owners


def pack(
    unique: Sequence[Prepared],
    limits: Limits,
    *,
    parameters: Sequence[dict[str, Any]] | None = None,
    tokens: Sequence[int] | None = None,
) -> list[Batch]:
    """Greedy, order-keeping packing: texts and media go in separate requests (texts then
    travel as a plain string list in the openai dialect, and usage needs no estimate), and
    so do parts sent with different ``parameters`` (one request has one set); a request
    closes when the next part would break the part, image, byte or token limit (a part
    alone over the token budget still goes, alone). ``tokens`` are the parts' estimated
    tokens (their text tokens when not given)."""
    batches: list[Batch] = []
    open_batches: dict[tuple[bool, tuple[tuple[str, Any], ...]], Batch] = {}
    for position, part in enumerate(unique):
        media = part.kind != "text"
        given = parameters[position] if parameters is not None else {}
        cost = tokens[position] if tokens is not None else part.text_tokens
        group = (media, tuple(sorted(given.items())))
        batch = open_batches.get(group)
        if batch is not None and (
            len(batch.items) >= limits.max_parts
            or batch.images + part.images > limits.max_images
            or batch.size + part.size_hint > limits.max_bytes
            or (limits.max_tokens is not None and batch.tokens + cost > limits.max_tokens)
        ):
            batch = None
        if batch is None:
            batch = Batch(items=[], size=ENVELOPE_BYTES, has_media=media, parameters=dict(given))
            open_batches[group] = batch
            batches.append(batch)
        batch.items.append(position)
        batch.size += part.size_hint
        batch.images += part.images
        batch.text_tokens += part.text_tokens
        batch.tokens += cost
    return batches


def split(batch: Batch, unique: Sequence[Prepared]) -> list[Batch]:
    """Halve a batch the service found too large (each half keeps its parameters)."""
    middle = len(batch.items) // 2
    halves = []
    for items in (batch.items[:middle], batch.items[middle:]):
        parts = [unique[i] for i in items]
        share = batch.tokens * len(items) // max(1, len(batch.items))
        halves.append(
            Batch(
                items=items,
                size=ENVELOPE_BYTES + sum(p.size_hint for p in parts),
                images=sum(p.images for p in parts),
                has_media=batch.has_media,
                text_tokens=sum(p.text_tokens for p in parts),
                parameters=dict(batch.parameters),
                tokens=share,
            )
        )
    return halves
