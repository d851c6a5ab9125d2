"""Texts over the token limit, sent as pieces and given back as one vector each.

With ``long_text="split"`` a text the estimate puts over the limit is cut by
:func:`~tongyi_vision.media.texts.split_text` into pieces within it. The plan
then holds *slots*: the caller's parts keep their indexes ``0..total-1`` and the
pieces get slots from ``total`` on. When the last piece of a text comes back,
the text's vector is the mean of its pieces' vectors weighted by their
estimated tokens, scaled back to unit length; until then the pieces' vectors
are kept here, so that a failed call's partial result carries them and a
resumed call sends only the pieces still missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from ..wire.results import Vector

LongText = Literal["error", "truncate", "split"]
"""What a call does with a text over the token limit: raise ``TextTooLongError``, embed
its longest prefix within the limit, or embed it in pieces and average them."""

LONG_TEXT_MODES: tuple[LongText, ...] = ("error", "truncate", "split")


class Pieces:
    """The texts of one call sent in pieces, and the vectors of their pieces so far."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._part: dict[int, int] = {}  # slot -> the caller's index of its text
        self._number: dict[int, int] = {}  # slot -> its position among the text's pieces
        self._slots: dict[int, list[int]] = {}  # caller's index -> the slots of its pieces
        self._weights: dict[int, int] = {}
        self._vectors: dict[int, Vector] = {}
        self._whole: dict[int, Vector] = {}

    def add(
        self, index: int, weights: Sequence[int], known: Mapping[int, Vector] | None = None
    ) -> list[int]:
        """Give the text at ``index`` one slot per piece (``weights`` are their estimated
        tokens); ``known`` holds vectors of its pieces from an earlier, failed call."""
        first = self.total + len(self._part)
        slots = list(range(first, first + len(weights)))
        self._slots[index] = slots
        for number, (slot, weight) in enumerate(zip(slots, weights, strict=True)):
            self._part[slot] = index
            self._number[slot] = number
            self._weights[slot] = max(1, weight)
            if known and number in known:
                self._vectors[slot] = known[number]
        return slots

    def has(self, slot: int) -> bool:
        """Whether the piece in ``slot`` already has its vector (from a resumed call)."""
        return slot in self._vectors

    def part_of(self, slot: int) -> int:
        """The caller's index of what a slot holds: a part, or the text a piece is of."""
        return self._part.get(slot, slot)

    def is_piece(self, slot: int) -> bool:
        return slot in self._part

    def take(self, slot: int, vector: Vector) -> tuple[int, Vector] | None:
        """Keep a piece's vector; when it completes its text, the text's index and vector."""
        self._vectors[slot] = vector
        index = self._part[slot]
        slots = self._slots[index]
        if index in self._whole or any(s not in self._vectors for s in slots):
            return None
        whole = weighted_mean([self._vectors[s] for s in slots], [self._weights[s] for s in slots])
        self._whole[index] = whole
        return index, whole

    def whole(self) -> dict[int, Vector]:
        """The vectors of every text whose pieces all came back, by the caller's index."""
        return dict(self._whole)

    def pending(self) -> dict[int, dict[int, Vector]]:
        """The vectors of the pieces of texts still incomplete: caller's index -> piece number."""
        pending: dict[int, dict[int, Vector]] = {}
        for slot, vector in self._vectors.items():
            index = self._part[slot]
            if index not in self._whole:
                pending.setdefault(index, {})[self._number[slot]] = vector
        return pending


def weighted_mean(vectors: Sequence[Vector], weights: Sequence[int]) -> Vector:
    """The mean of ``vectors`` weighted by ``weights``, scaled to unit length (as the
    service's own vectors are, so that cosine and dot-product stores rank it alike)."""
    total = sum(weights)
    mean = [
        sum(w * x for w, x in zip(weights, column, strict=True)) / total
        for column in zip(*vectors, strict=True)
    ]
    norm = math.sqrt(sum(x * x for x in mean))
    return [x / norm for x in mean] if norm > 0 else mean
