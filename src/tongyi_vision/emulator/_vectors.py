"""Deterministic stand-in vectors: lexical for text, pixel-based for images. Not semantic.

Every value is derived with :mod:`hashlib` (never the salted built-in ``hash``),
so a vector is the same in every process on every machine. Features are
projected into the requested dimension by signed feature hashing: each
feature adds its weight, with a sign, to a few hashed coordinates. That keeps
inner products roughly intact, so inputs with shared features stay close.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import math
import re
import struct
from collections import defaultdict
from collections.abc import Sequence

Vector = list[float]

# Each feature lands on this many coordinates: fewer collisions hurt any one pair of inputs.
_BUCKETS_PER_FEATURE = 3
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.35
# Function words say little about what a text is about: they count for a fifth of a word.
_STOPWORD_WEIGHT = 0.2
_STOPWORD_LIST = (
    "a an the of in on at to and or but is are was were be been for with by it its this that "
    "these those as from into than then so not no do does did has have had i you he she we they "
    "my your his her our their me him us them what which who whom"
)
_STOPWORDS = frozenset(_STOPWORD_LIST.split())
_TOKEN = re.compile(r"[^\W_]+")
_CJK_CHAR = re.compile("[\u2e80-\u9fff\uac00-\ud7ff\uf900-\ufaff\U00020000-\U0002fa1f]")

# Images are compared as a THUMB x THUMB RGB thumbnail: small enough to be cheap, large enough
# that unrelated pictures differ and a resized or re-encoded copy does not.
THUMB = 16
PIXEL_FEATURES = THUMB * THUMB * 3


def normalise(values: Sequence[float]) -> Vector | None:
    """``values`` scaled to unit length, or ``None`` for a zero vector."""
    norm = math.sqrt(math.fsum(v * v for v in values))
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return [v / norm for v in values]


def seeded_vector(kind: str, key: bytes, dimension: int) -> Vector:
    """A pseudo-random unit vector determined by ``kind`` and ``key`` alone.

    Equal keys give equal vectors; different keys give vectors near
    orthogonal (cosine about ±1/sqrt(dimension)).
    """
    stream = hashlib.shake_256(kind.encode() + b"\0" + key).digest(2 * dimension)
    values = [v + 0.5 for v in struct.unpack(f"<{dimension}h", stream)]
    vector = normalise(values)
    if vector is None:  # pragma: no cover - 2*dimension bytes of SHAKE output are never all -0.5
        raise RuntimeError("seeded vector is zero")
    return vector


@functools.lru_cache(maxsize=1 << 16)
def _buckets(feature: str, dimension: int) -> tuple[tuple[int, float], ...]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8 * _BUCKETS_PER_FEATURE).digest()
    pairs = []
    for k in range(_BUCKETS_PER_FEATURE):
        word = int.from_bytes(digest[8 * k : 8 * k + 8], "little")
        pairs.append((word % dimension, 1.0 if word >> 63 else -1.0))
    return tuple(pairs)


def text_features(text: str) -> dict[str, float]:
    """Weighted lexical features of a text.

    Lower-cased word tokens (weight 1; common English function words 0.2)
    and their character trigrams (weight 0.35, so shared spellings count a
    little); CJK runs, which have no spaces, as single characters and pairs.
    """
    features: defaultdict[str, float] = defaultdict(float)
    for token in _TOKEN.findall(text.lower()):
        if _CJK_CHAR.search(token):
            chars = list(token)
            for char in chars:
                features["w:" + char] += _WORD_WEIGHT
            for first, second in itertools.pairwise(chars):
                features["w:" + first + second] += _WORD_WEIGHT
            continue
        if token in _STOPWORDS:
            features["w:" + token] += _STOPWORD_WEIGHT
            continue
        features["w:" + token] += _WORD_WEIGHT
        padded = f"<{token}>"
        for start in range(len(padded) - 2):
            features["c:" + padded[start : start + 3]] += _TRIGRAM_WEIGHT
    if not features:
        # Punctuation or symbols only: the characters themselves are all there is.
        for char in text:
            if not char.isspace():
                features["s:" + char] += _WORD_WEIGHT
    return dict(features)


def text_vector(text: str, dimension: int) -> Vector:
    """A unit vector of ``text``'s lexical features: shared words make texts close."""
    return list(_text_vector(text, dimension))


# Tests and benchmarks send the same texts again and again; a vector is a pure function of
# its text and size, so it is computed once per (text, dimension).
@functools.lru_cache(maxsize=1 << 14)
def _text_vector(text: str, dimension: int) -> tuple[float, ...]:
    sparse: defaultdict[int, float] = defaultdict(float)
    for feature, count in text_features(text).items():
        # Dampen repeats, so one word said ten times does not drown the rest.
        weight = math.sqrt(count)
        for bucket, sign in _buckets(feature, dimension):
            sparse[bucket] += sign * weight
    norm = math.sqrt(math.fsum(v * v for v in sparse.values()))
    if norm == 0.0:
        return tuple(seeded_vector("text", text.encode(), dimension))
    values = [0.0] * dimension
    for bucket, value in sparse.items():
        values[bucket] = value / norm
    return tuple(values)


@functools.lru_cache(maxsize=32)
def _pixel_layout(dimension: int) -> tuple[tuple[float, ...], tuple[tuple[int, ...], ...]]:
    """Signs of the pixel features, and which features each coordinate sums.

    Features are dealt to coordinates in a hash-determined order: with 768
    coordinates or more each gets at most one feature (an exact isometry, so
    cosines between thumbnails are kept as they are); with fewer, features
    share coordinates evenly.
    """
    ranked = sorted(
        range(PIXEL_FEATURES),
        key=lambda i: hashlib.blake2b(f"px:{dimension}:{i}".encode(), digest_size=8).digest(),
    )
    groups: list[list[int]] = [[] for _ in range(dimension)]
    for position, feature in enumerate(ranked):
        groups[position % dimension].append(feature)
    signs = tuple(
        1.0 if hashlib.blake2b(f"px-sign:{i}".encode(), digest_size=1).digest()[0] & 1 else -1.0
        for i in range(PIXEL_FEATURES)
    )
    return signs, tuple(tuple(group) for group in groups)


def thumbnail(data: bytes, max_pixels: int) -> tuple[int, int, bytes]:
    """Decode an image (JPEG, PNG, BMP): its width, height and THUMB x THUMB RGB pixels.

    Large JPEGs are decoded at reduced scale (``draft``), which is what keeps a
    3 MB photo cheap. Raises ``ValueError`` for images over ``max_pixels`` and
    whatever Pillow raises for undecodable data.
    """
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"{width}x{height} pixels is over {max_pixels:,}")
        image.draft("RGB", (THUMB * 4, THUMB * 4))
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        small = rgb.resize((THUMB, THUMB), PILImage.Resampling.BOX, reducing_gap=2.0)
    return width, height, small.tobytes()


def pixel_vector(pixels: bytes, dimension: int) -> Vector:
    """A unit vector of a thumbnail's mean-centred pixels.

    A resized or re-encoded copy has nearly the same thumbnail, so its vector
    lands close; unrelated images have uncorrelated deviations from their
    mean, so theirs are near orthogonal. A flat grey image (no deviation at
    all) gets a vector seeded by its grey level.
    """
    mean = sum(pixels) / len(pixels)
    signs, groups = _pixel_layout(dimension)
    deviations = [(value - mean) * sign for value, sign in zip(pixels, signs, strict=True)]
    if len(groups) >= PIXEL_FEATURES:
        # At most one feature per coordinate: pick, don't sum (the common case, and hot).
        values = [deviations[group[0]] if group else 0.0 for group in groups]
    else:
        values = [math.fsum(deviations[i] for i in group) for group in groups]
    vector = normalise(values)
    if vector is None:
        colour = bytes(round(sum(pixels[c::3]) / (len(pixels) // 3)) // 8 for c in range(3))
        vector = seeded_vector("flat-image", colour, dimension)
    return vector


def mean_vector(vectors: Sequence[Vector], dimension: int) -> Vector:
    """The normalised mean of unit vectors (a ``multi_images`` group)."""
    total = [math.fsum(column) for column in zip(*vectors, strict=True)] if vectors else []
    return normalise(total) or seeded_vector("empty-group", b"", dimension)


def fused_vector(vectors: Sequence[Vector], dimension: int) -> Vector:
    """The vector of a fused content (text, image and video in one object): the normalised
    sum of its members' unit vectors. Each member's cosine to it is about 1/sqrt(members)
    (0.71 for two, 0.58 for three), far above unrelated inputs and short of 1."""
    total = [math.fsum(column) for column in zip(*vectors, strict=True)] if vectors else []
    return normalise(total) or seeded_vector("empty-fusion", b"", dimension)


# How far an instruction moves a vector: a seeded direction of this length is added to the
# unit vector, so the cosine to the plain vector is about 1/sqrt(1 + 0.25**2) = 0.97, and two
# instructions' vectors of one input are about 0.94 apart.
_INSTRUCT_WEIGHT = 0.25


def instructed_vector(vector: Vector, instruct: str, dimension: int) -> Vector:
    """``vector`` embedded under the task instruction ``instruct``: moved a little, always the
    same way for the same instruction (a seeded direction), so it stays near the plain vector
    and differs from the one under any other instruction."""
    direction = seeded_vector("instruct", instruct.strip().encode(), dimension)
    moved = [v + _INSTRUCT_WEIGHT * d for v, d in zip(vector, direction, strict=True)]
    return normalise(moved) or direction


def video_bytes_vector(data: bytes, dimension: int) -> Vector:
    """The vector of a video sent inline: seeded by its bytes (no decoding, no frames)."""
    return seeded_vector("video-bytes", hashlib.sha256(data).digest(), dimension)


def url_vector(kind: str, url: str, dimension: int) -> Vector:
    """The vector of media the emulator cannot fetch: seeded by the URL string."""
    return seeded_vector(kind + "-url", url.encode(), dimension)
