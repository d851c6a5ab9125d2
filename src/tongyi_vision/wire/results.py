"""What a call gives back: vectors, usage and cost, progress events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .limits import media_price

Vector = list[float]
"""One embedding: plain Python floats."""


@dataclass(frozen=True)
class Usage:
    """Tokens, requests and cost of one call, or summed over a client's life.

    ``text_tokens`` and ``media_tokens`` (images and video) come from the
    provider where it reports them per modality (native dialect). Where it
    reports only a total (openai dialect), the split is computed from the
    client's text-token estimate and ``modality_estimated`` is true; the cost
    follows the split, with the prices of ``docs/limits.md``. ``image_tokens``
    and ``video_tokens`` are the parts of ``media_tokens`` the provider names
    (``input_tokens_details``, or the older ``image_tokens``); each modality's
    dollars are ``text_cost_usd`` and ``media_cost_usd`` (of which
    ``image_cost_usd`` and ``video_cost_usd`` where the provider names them),
    adding up to ``cost_usd``.

    ``pieces`` counts the pieces that texts over the token limit were embedded
    in (``long_text="split"``), each billed as a text of its own; ``truncated``
    counts texts cut to fit (``long_text="truncate"``). ``cached`` counts the
    distinct parts served from the embedding cache (nothing sent for them), and
    ``saved_usd`` what they cost when they were embedded.
    """

    prompt_tokens: int = 0
    total_tokens: int = 0
    text_tokens: int = 0
    media_tokens: int = 0
    image_tokens: int = 0
    video_tokens: int = 0
    image_count: int = 0
    video_seconds: float = 0.0
    requests: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    modality_estimated: bool = False
    pieces: int = 0
    truncated: int = 0
    cached: int = 0
    saved_usd: float = 0.0
    text_cost_usd: float = 0.0
    media_cost_usd: float = 0.0
    image_cost_usd: float = 0.0
    video_cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            text_tokens=self.text_tokens + other.text_tokens,
            media_tokens=self.media_tokens + other.media_tokens,
            image_tokens=self.image_tokens + other.image_tokens,
            video_tokens=self.video_tokens + other.video_tokens,
            image_count=self.image_count + other.image_count,
            video_seconds=self.video_seconds + other.video_seconds,
            requests=self.requests + other.requests,
            retries=self.retries + other.retries,
            cost_usd=self.cost_usd + other.cost_usd,
            modality_estimated=self.modality_estimated or other.modality_estimated,
            pieces=self.pieces + other.pieces,
            truncated=self.truncated + other.truncated,
            cached=self.cached + other.cached,
            saved_usd=self.saved_usd + other.saved_usd,
            text_cost_usd=self.text_cost_usd + other.text_cost_usd,
            media_cost_usd=self.media_cost_usd + other.media_cost_usd,
            image_cost_usd=self.image_cost_usd + other.image_cost_usd,
            video_cost_usd=self.video_cost_usd + other.video_cost_usd,
        )

    def priced(self, model: str) -> Usage:
        """This usage with its costs computed for ``model``, per modality and in all."""
        text_price, media_price_ = media_price(model)
        text = self.text_tokens * text_price / 1_000_000
        media = self.media_tokens * media_price_ / 1_000_000
        return replace(
            self,
            cost_usd=text + media,
            text_cost_usd=text,
            media_cost_usd=media,
            image_cost_usd=self.image_tokens * media_price_ / 1_000_000,
            video_cost_usd=self.video_tokens * media_price_ / 1_000_000,
        )


@dataclass(frozen=True)
class EmbedResult:
    """What ``embed`` returns: one vector per part, in input order, and the usage of the call."""

    vectors: list[Vector]
    usage: Usage
    model: str
    dimension: int

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to a ``progress`` callback after each request finishes (or is retried).

    ``vectors`` holds what the request that just finished embedded, by the parts'
    positions in the call (empty for a retry), so a caller can store each
    request's results as soon as they exist; the call's result holds them all too.
    """

    parts_done: int
    parts_total: int
    requests_done: int
    requests_total: int
    retries: int
    vectors: Mapping[int, Vector] = field(default_factory=dict)
