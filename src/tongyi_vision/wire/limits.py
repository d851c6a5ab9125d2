"""The numbers of the wire contract: models, sizes, limits and prices.

Both the client (which checks inputs before sending) and the emulator (which
refuses what the real service refuses) read them from here, so the two cannot
drift apart. See ``docs/limits.md`` for where each figure comes from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

FLASH = "tongyi-embedding-vision-flash"
PLUS = "tongyi-embedding-vision-plus"


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts and costs."""

    name: str
    default_dimension: int
    dimensions: tuple[int, ...]
    text_price_per_million: float
    media_price_per_million: float


MODELS: dict[str, ModelSpec] = {
    FLASH: ModelSpec(FLASH, 768, (768, 512, 256, 128, 64), 0.09, 0.03),
    PLUS: ModelSpec(PLUS, 1152, (1152, 1024, 512, 256, 128, 64), 0.09, 0.09),
}

DEFAULT_MODEL = FLASH

MAX_TEXT_TOKENS = 1024
MAX_IMAGE_BYTES = 3 * 1024 * 1024
MAX_VIDEO_BYTES = 10 * 1024 * 1024
MAX_IMAGES_PER_REQUEST = 8
MAX_IMAGES_PER_GROUP = 8
# The API family documents at most 20 content elements per request.
MAX_PARTS_PER_REQUEST = 20
# Eight images near the 3 MB limit would make a 32 MB body; keep requests well below
# what gateways commonly accept and let 413 answers split a batch further.
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
# Larger than any camera sensor; an image header claiming more is a decompression bomb.
MAX_DECODE_PIXELS = 120_000_000

_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef"
    "\U00020000-\U0002fa1f]"
)
_CJK_ASTRAL = re.compile("[\U00020000-\U0002fa1f]")


def estimate_text_tokens(text: str) -> int:
    """Estimate how many tokens the service counts for ``text``.

    The service does not publish its tokenizer, so this errs on the high side:
    every CJK character, every digit and every other non-ASCII character is one
    token (byte-level tokenizers split digits one by one and rarely merge
    characters of less common scripts), emoji and other characters beyond the
    Basic Multilingual Plane two, and the remaining ASCII one token per three
    characters (English text averages about four).
    """
    # Counted with str methods and one regex, not per-character Python loops: the
    # estimate runs on every text before sending and showed up first in profiles.
    digits = sum(map(text.count, "0123456789"))
    if text.isascii():
        return digits + math.ceil((len(text) - digits) / 3)
    cjk = len(_CJK.findall(text))
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - cjk - ascii_chars
    # Characters beyond the BMP take two UTF-16 code units; CJK ones are counted once only.
    wide = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
    astral = wide - len(_CJK_ASTRAL.findall(text))
    return cjk + other + astral + digits + math.ceil((ascii_chars - digits) / 3)


def image_tokens_for_pixels(width: int, height: int) -> int:
    """The emulator's documented image-token formula: one token per 28x28 patch.

    Images are counted after scaling into [4, 1024] patches, the way vision
    encoders of this family tile their input. The real formula is not published;
    real usage always comes from the service's answer.
    """
    patches = math.ceil(width / 28) * math.ceil(height / 28)
    return max(4, min(1024, patches))


def media_price(model: str) -> tuple[float, float]:
    """(text, image/video) dollars per million tokens; an unknown model is priced as plus,
    the dearer of the two, so a cost estimate errs high."""
    spec = MODELS.get(base_model(model))
    if spec is None:
        spec = MODELS[PLUS]
    return spec.text_price_per_million, spec.media_price_per_million


def base_model(model: str) -> str:
    """Strip a dated snapshot suffix: ``tongyi-embedding-vision-flash-2026-03-06`` -> flash."""
    for name in MODELS:
        if model == name or model.startswith(name + "-"):
            return name
    return model
