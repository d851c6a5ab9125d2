"""Splitting long text into chunks the service takes, each within the token limit."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..wire.limits import MAX_TEXT_TOKENS, estimate_text_tokens


def split_text(text: str, max_tokens: int = MAX_TEXT_TOKENS) -> list[str]:
    """Split ``text`` into chunks the service takes (each within ``max_tokens`` by the estimate).

    Paragraphs stay whole where they fit and are packed together up to the
    limit; a longer paragraph is split between words, and a longer word
    between characters. Whitespace-only text gives no chunks.
    """
    chunks: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        joined = f"{current}\n\n{paragraph}" if current else paragraph
        if estimate_text_tokens(joined) <= max_tokens:
            current = joined
            continue
        if current:
            chunks.append(current)
        if estimate_text_tokens(paragraph) <= max_tokens:
            current = paragraph
            continue
        current = ""
        for piece in _split_words(paragraph, max_tokens):
            chunks.append(piece)
    if current:
        chunks.append(current)
    return chunks


def truncate_text(text: str, max_tokens: int = MAX_TEXT_TOKENS) -> str:
    """The longest start of ``text`` within ``max_tokens`` by the estimate, cut after the
    last whitespace when there is one in its final fifth (so that no word is cut in two)."""
    if estimate_text_tokens(text) <= max_tokens:
        return text
    cut = _longest_prefix(text, max_tokens)
    space = max(text.rfind(" ", 0, cut + 1), text.rfind("\n", 0, cut + 1))
    if space > cut * 4 // 5:
        cut = space
    return text[:cut].rstrip()


def _split_words(paragraph: str, max_tokens: int) -> Iterator[str]:
    words = paragraph.split()
    start = 0
    while start < len(words):
        word = words[start]
        if estimate_text_tokens(word) > max_tokens:
            # A run without spaces (CJK text, a long token): cut it by characters.
            while estimate_text_tokens(word) > max_tokens:
                cut = _longest_prefix(word, max_tokens)
                yield word[:cut]
                word = word[cut:]
            words[start] = word
        # The most words from `start` that fit, found by doubling then halving the count,
        # so that a long paragraph costs a few estimates per chunk, not one per word.
        fits, step = 1, 1
        while start + fits + step <= len(words) and _fits(words, start, fits + step, max_tokens):
            fits += step
            step *= 2
        while step > 1:
            step //= 2
            if start + fits + step <= len(words) and _fits(words, start, fits + step, max_tokens):
                fits += step
        yield " ".join(words[start : start + fits])
        start += fits


def _fits(words: list[str], start: int, count: int, max_tokens: int) -> bool:
    return estimate_text_tokens(" ".join(words[start : start + count])) <= max_tokens


def _longest_prefix(word: str, max_tokens: int) -> int:
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_text_tokens(word[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low
