"""The fast token estimate counts exactly what the rule in its docstring says."""

from __future__ import annotations

import math
import random

import pytest

from tongyi_vision import estimate_text_tokens
from tongyi_vision.wire.limits import _CJK


def reference(text: str) -> int:
    """The rule spelled out character by character."""
    cjk = _CJK.findall(text)
    ascii_chars = sum(1 for c in text if c < "\x80")
    digits = sum(1 for c in text if "0" <= c <= "9")
    other = len(text) - len(cjk) - ascii_chars
    astral = sum(1 for c in text if c > "\uffff") - sum(1 for c in cjk if c > "\uffff")
    return len(cjk) + other + astral + digits + math.ceil((ascii_chars - digits) / 3)


POOLS = [
    "abc xyz 0123456789 .,!\n\t",
    "中文字符测试",
    "é ü ñ ж ۳",
    "😀🎉",
    "\U00020000\U0002a6d6",
    "가힣",
    "\ud800\udfff",  # lone surrogates, as left by a lossy decode
]


def test_matches_the_rule_on_random_mixed_text() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(rng.choice(POOLS)) for _ in range(rng.randint(0, 80)))
        assert estimate_text_tokens(text) == reference(text), repr(text)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("abc", 1),
        ("abcd", 2),
        ("2026", 4),
        ("中文", 2),
        ("😀", 2),
        ("\U00020000", 1),
    ],
)
def test_known_counts(text: str, tokens: int) -> None:
    assert estimate_text_tokens(text) == tokens
