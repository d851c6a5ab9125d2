"""Packing the parts of a call into requests within the service's limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..media.prepared import Prepared

# Room for the JSON around the parts (model name, keys, parameters), so a request's
# body stays under the byte cap, not just the sum of its parts.
ENVELOPE_BYTES = 256


@dataclass
class Batch:
    """One request's worth of unique parts: ``items`` index the call's unique parts."""

    items: list[int]
    size: int = 0
    images: int = 0
    has_media: bool = False
    text_tokens: int = 0


@dataclass(frozen=True)
class Limits:
    max_parts: int
    max_images: int
    max_bytes: int


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


def pack(unique: Sequence[Prepared], limits: Limits) -> list[Batch]:
    """Greedy, order-keeping packing: texts and media go in separate requests (texts then
    travel as a plain string list in the openai dialect, and usage needs no estimate);
    a request closes when the next part would break the part, image or byte limit."""
    batches: list[Batch] = []
    open_batches: dict[bool, Batch] = {}
    for position, part in enumerate(unique):
        media = part.kind != "text"
        batch = open_batches.get(media)
        if batch is not None and (
            len(batch.items) >= limits.max_parts
            or batch.images + part.images > limits.max_images
            or batch.size + part.size_hint > limits.max_bytes
        ):
            batch = None
        if batch is None:
            batch = Batch(items=[], size=ENVELOPE_BYTES, has_media=media)
            open_batches[media] = batch
            batches.append(batch)
        batch.items.append(position)
        batch.size += part.size_hint
        batch.images += part.images
        batch.text_tokens += part.text_tokens
    return batches


def split(batch: Batch, unique: Sequence[Prepared]) -> list[Batch]:
    """Halve a batch the service found too large."""
    middle = len(batch.items) // 2
    halves = []
    for items in (batch.items[:middle], batch.items[middle:]):
        parts = [unique[i] for i in items]
        halves.append(
            Batch(
                items=items,
                size=ENVELOPE_BYTES + sum(p.size_hint for p in parts),
                images=sum(p.images for p in parts),
                has_media=batch.has_media,
                text_tokens=sum(p.text_tokens for p in parts),
            )
        )
    return halves
