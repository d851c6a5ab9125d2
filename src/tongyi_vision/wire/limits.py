"""The numbers of the wire contract: models, sizes, limits and prices.

Both the client (which checks inputs before sending) and the emulator (which
refuses what the real service refuses) read them from here, so the two cannot
drift apart. See ``docs/limits.md`` for where each figure comes from.
"""

from __future__ import annotations

import math
import re
import string
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
# Scripts whose words the tokenizer merges well: Latin with accents, Cyrillic, Arabic.
_DENSE = re.compile("[\u00c0-\u024f\u0400-\u052f\u0600-\u06ff]")
_CJK_ASTRAL = re.compile("[\U00020000-\U0002fa1f]")
_NON_ASCII = re.compile("[^\x00-\x7f]+")


def _flags(chars: str) -> bytes:
    """A ``bytes.translate`` table: 1 for each byte in ``chars``, 0 for the rest."""
    return bytes(1 if chr(i) in chars else 0 for i in range(256))


_LETTER = _flags(string.ascii_letters)
_LOWER = _flags(string.ascii_lowercase)
_UPPER = _flags(string.ascii_uppercase)
_PUNCT = _flags(string.punctuation)
_NEWLINE = _flags("\n\r\v\f")
_SPACE = _flags(" \t")
_DIGIT = _flags(string.digits)
_NOT_VOWEL = bytes(i for i in range(256) if chr(i) not in "aeiouAEIOU")


def _mask(data: bytes, table: bytes) -> int:
    """One bit per byte of ``data`` (at the byte's lowest bit) set where ``table`` says 1.

    ``mask >> 8`` then lines each character up with the one after it, so runs and pairs
    of character classes are counted with integer operations instead of a Python loop.
    """
    return int.from_bytes(data.translate(table), "big")


def estimate_text_tokens(text: str) -> int:
    """Estimate how many tokens the service counts for ``text``.

    The service does not publish its tokenizer; this mimics the byte-level BPE
    tokenizers of the Qwen family, calibrated against one (see ``docs/limits.md``
    for the corpora and the error). It counts the pieces such a tokenizer first
    splits text into: each word of ASCII letters is one token, plus one per six
    letters beyond the sixth and a half per lower-to-upper case change; each
    digit is one, and so is a space before a digit; each run of punctuation one,
    plus one per 1.5 further characters; each run of line breaks one, plus one
    for an indent. In a text of 64 letters or more of which under 30% are vowels
    (hashes, base64: not words), letters cost up to 0.6 tokens each, as such runs
    break into short tokens. A CJK character is 0.8 tokens, an accented Latin,
    Cyrillic or Arabic letter 0.5, any other non-ASCII character one, and two
    beyond the Basic Multilingual Plane (emoji).

    On English prose, Markdown, code and Chinese it counts 5-30% more than the
    tokenizer, and at most a few percent less on any 3,000-character chunk of the
    calibration; long random ASCII or base64 can count up to 16% less.
    """
    # Counted in 330ths of a token, so that the sum is exact and the same everywhere.
    tokens = 0
    if not text.isascii():
        cjk = len(_CJK.findall(text))
        dense = len(_DENSE.findall(text))
        ascii_chars = len(text.encode("ascii", "ignore"))
        # Characters beyond the BMP (emoji) take two UTF-16 code units: one more token
        # each, CJK ones aside.
        wide = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
        wide -= len(_CJK_ASTRAL.findall(text))
        other = len(text) - cjk - ascii_chars - dense
        tokens += 264 * cjk + 165 * dense + 330 * (other + wide)
        text = _NON_ASCII.sub(" ", text)
    data = text.encode("ascii")
    letters = _mask(data, _LETTER)
    letter_count = letters.bit_count()
    words = (letters & ~(letters >> 8)).bit_count()
    run = letters
    for _ in range(6):
        run &= run >> 8
    beyond_sixth = run.bit_count()  # letters with six letters before them in the same word
    case_changes = ((_mask(data, _LOWER) >> 8) & _mask(data, _UPPER)).bit_count()
    word_tokens = 330 * words + 165 * case_changes + 55 * beyond_sixth
    if letter_count >= 64:
        # English runs 35-38% vowels, random letters 19%: from 30% down to 19% vowels,
        # letters cost more and more, up to 0.6 tokens each (198 330ths).
        vowels = len(data.translate(None, _NOT_VOWEL))
        scarce = 540 * letter_count - 1800 * vowels
        word_tokens = max(word_tokens, min(198 * letter_count, scarce))
    punct = _mask(data, _PUNCT)
    punct_runs = (punct & ~(punct >> 8)).bit_count()
    punct_tokens = 330 * punct_runs + 220 * (punct.bit_count() - punct_runs)
    newline = _mask(data, _NEWLINE)
    space = _mask(data, _SPACE)
    digits = _mask(data, _DIGIT)
    breaks = (newline & ~(newline >> 8)).bit_count() + ((newline >> 8) & space).bit_count()
    # A digit is split from the space before it, which then costs a token of its own.
    spaced_digits = (((newline | space) >> 8) & digits).bit_count()
    tokens += word_tokens + punct_tokens + 330 * (digits.bit_count() + breaks + spaced_digits)
    return -(-tokens // 330)


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
