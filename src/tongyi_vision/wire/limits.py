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
from typing import Literal

FLASH = "tongyi-embedding-vision-flash"
PLUS = "tongyi-embedding-vision-plus"
SNAPSHOT = "2026-03-06"
FLASH_SNAPSHOT = f"{FLASH}-{SNAPSHOT}"
PLUS_SNAPSHOT = f"{PLUS}-{SNAPSHOT}"

Parameter = Literal["res_level", "max_video_frames", "fps", "instruct"]
"""A native request parameter beyond ``dimension`` that a model may accept."""

PARAMETERS: tuple[Parameter, ...] = ("res_level", "max_video_frames", "fps", "instruct")
MEDIA_PARAMETERS: tuple[Parameter, ...] = ("res_level", "max_video_frames", "fps")

# Image tokens per image at each res_level (0..3), as the snapshots' pages give them;
# the service's default tier is 1.
RES_LEVEL_TOKENS = (127, 402, 578, 1026)
DEFAULT_RES_LEVEL = 1
MAX_VIDEO_FRAMES = 64
DEFAULT_MAX_VIDEO_FRAMES = 8


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts and costs.

    ``dimensions`` lists the sizes the pages name; ``dimension_range``, when set, says any
    size in that closed range is accepted (the dated snapshots). ``dimension_checked``:
    the pages disagree on whether the model honours ``dimension`` (the undated names), so
    the client sends it and checks the length of what comes back. ``parameters``: the
    native parameters beyond ``dimension`` it takes; ``fuses``: whether a content object
    holding several media gives one fused vector. ``known`` is false for the permissive
    rules an unknown model name is given.
    """

    name: str
    default_dimension: int
    dimensions: tuple[int, ...]
    text_price_per_million: float
    media_price_per_million: float
    dimension_range: tuple[int, int] | None = None
    parameters: frozenset[Parameter] = frozenset({"fps"})
    fuses: bool = False
    dimension_checked: bool = False
    known: bool = True

    def accepts_dimension(self, dimension: int) -> bool:
        """Whether ``dimension`` is a size this model may be asked for."""
        if self.dimension_range is not None:
            low, high = self.dimension_range
            return low <= dimension <= high
        return dimension in self.dimensions

    def describe_dimensions(self) -> str:
        """The sizes it takes, in words: ``768, 512, 256, 128 or 64`` or ``any of 64..768``."""
        if self.dimension_range is not None:
            return f"any of {self.dimension_range[0]}..{self.dimension_range[1]}"
        *most, last = map(str, self.dimensions)
        return f"{', '.join(most)} or {last}" if most else last


_SNAPSHOT_PARAMETERS: frozenset[Parameter] = frozenset(PARAMETERS)

MODELS: dict[str, ModelSpec] = {
    # The undated names: the English pages list these sizes, the Chinese reference says
    # dimension is ignored; the client checks the length of what comes back.
    FLASH: ModelSpec(FLASH, 768, (768, 512, 256, 128, 64), 0.09, 0.03, dimension_checked=True),
    PLUS: ModelSpec(
        PLUS, 1152, (1152, 1024, 512, 256, 128, 64), 0.09, 0.09, dimension_checked=True
    ),
    # The dated snapshots: any size up to the full one, the newer parameters, fusion;
    # priced as their base (no page gives them other prices).
    FLASH_SNAPSHOT: ModelSpec(
        FLASH_SNAPSHOT,
        768,
        (768, 512, 256, 128, 64),
        0.09,
        0.03,
        dimension_range=(64, 768),
        parameters=_SNAPSHOT_PARAMETERS,
        fuses=True,
    ),
    PLUS_SNAPSHOT: ModelSpec(
        PLUS_SNAPSHOT,
        1152,
        (1152, 1024, 512, 256, 128, 64),
        0.09,
        0.09,
        dimension_range=(64, 1152),
        parameters=_SNAPSHOT_PARAMETERS,
        fuses=True,
    ),
}

DEFAULT_MODEL = FLASH


def model_spec(model: str) -> ModelSpec:
    """The rules of ``model``: its row of :data:`MODELS`, or, for a name the table does not
    know, the most permissive rules (any size, every parameter, fusion) with no default
    size, priced as the dearest model so that a cost estimate errs high."""
    spec = MODELS.get(model)
    if spec is not None:
        return spec
    return ModelSpec(
        model,
        0,
        (),
        max(s.text_price_per_million for s in MODELS.values()),
        max(s.media_price_per_million for s in MODELS.values()),
        dimension_range=(1, 1 << 16),
        parameters=_SNAPSHOT_PARAMETERS,
        fuses=True,
        dimension_checked=True,
        known=False,
    )


def parameter_problem(name: str, value: object) -> str | None:
    """What is wrong with a value of a native parameter, or ``None`` if it is fine."""
    if isinstance(value, bool):
        return f"{name} must be a number or a string, not {value!r}"
    if name == "res_level" and (not isinstance(value, int) or not 0 <= value <= 3):
        return f"res_level must be an int from 0 to 3 (the image resolution tier), not {value!r}"
    if name == "max_video_frames" and (
        not isinstance(value, int) or not 1 <= value <= MAX_VIDEO_FRAMES
    ):
        return f"max_video_frames must be an int from 1 to {MAX_VIDEO_FRAMES}, not {value!r}"
    if name == "fps" and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
        return f"fps is a frame-sampling ratio in [0, 1] (not frames per second), not {value!r}"
    if name == "instruct" and (not isinstance(value, str) or not value.strip()):
        return f"instruct must be a non-empty string (a task instruction), not {value!r}"
    return None


def image_tokens_estimate(res_level: int | None) -> int:
    """About how many tokens one image costs at a resolution tier (the default tier when
    ``None``): the snapshots' pages give the tiers; for the undated names, which publish no
    formula, the default tier is the estimate. Real usage comes from the answer."""
    return RES_LEVEL_TOKENS[DEFAULT_RES_LEVEL if res_level is None else res_level]


MAX_TEXT_TOKENS = 1024
MAX_IMAGE_BYTES = 3 * 1024 * 1024
MAX_VIDEO_BYTES = 10 * 1024 * 1024
MAX_IMAGES_PER_REQUEST = 8
MAX_IMAGES_PER_GROUP = 8
# The older pages give at most 20 content elements per request; the native API now states
# only a token budget. The client's cap is a setting (max_parts_per_request) with this default.
MAX_PARTS_PER_REQUEST = 20
DEFAULT_MAX_PARTS_PER_REQUEST = MAX_PARTS_PER_REQUEST
# The native API's limit is a token budget per request, of a size no page gives: the
# default is twenty parts at the per-text limit, so it never splits what the parts cap keeps
# together; a lower max_request_tokens packs by estimated tokens.
DEFAULT_MAX_REQUEST_TOKENS = 20 * 1024
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
    """(text, image/video) dollars per million tokens; an unknown model is priced as the
    dearest of the table, so a cost estimate errs high."""
    spec = model_spec(model)
    return spec.text_price_per_million, spec.media_price_per_million


def base_model(model: str) -> str:
    """The undated family name: ``tongyi-embedding-vision-flash-2026-03-06`` -> flash (what
    a snapshot is a version of; its rules are its own row of :data:`MODELS`)."""
    for name in (FLASH, PLUS):
        if model == name or model.startswith(name + "-"):
            return name
    return model
