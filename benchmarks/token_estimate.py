"""How close ``estimate_text_tokens`` is to a real tokenizer of the Qwen family, and what that
means for the chunks the frameworks' default splitters make.

    python benchmarks/token_estimate.py            # print the section
    python benchmarks/token_estimate.py --write    # and rewrite it in docs/benchmarks.md

The tokenizer is the one the ``dashscope`` package ships (``get_tokenizer("qwen-7b-chat")``,
Qwen's byte-level BPE; a dev dependency). The service does not say which tokenizer it counts
with, so this measures the estimate against the closest one a package provides.

Side by side: the estimate before this change (one token per 3 ASCII characters, one per
digit and per non-ASCII character) and the rule of thumb of 4 characters a token.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import random
import re
import statistics
import string
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from _common import ROOT, Table, markdown_table, write_section

from tongyi_vision import estimate_text_tokens
from tongyi_vision.wire.limits import MAX_TEXT_TOKENS

SECTION = "token-estimate"
CHUNK = 3000
_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef]"
)


def previous_estimate(text: str) -> int:
    """The rule this project used before: it erred high by a third on English."""
    digits = sum(map(text.count, "0123456789"))
    cjk = len(_CJK.findall(text))
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - cjk - ascii_chars
    return cjk + other + digits + math.ceil((ascii_chars - digits) / 3)


def four_characters(text: str) -> int:
    return math.ceil(len(text) / 4)


def corpora() -> dict[str, str]:
    import dashscope

    modules = ["json", "asyncio", "argparse", "collections", "email", "http.client", "logging"]
    modules += ["pathlib", "subprocess", "unittest", "typing", "datetime", "decimal", "zipfile"]
    docstrings = []
    for name in modules:
        for _, obj in inspect.getmembers(importlib.import_module(name)):
            doc = inspect.getdoc(obj)
            if doc and len(doc) > 200:
                docstrings.append(doc)
    chinese = sorted(Path(dashscope.__file__).parent.rglob("README_zh.md"))
    rng = random.Random(1)
    words = (
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 12))) for _ in range(4000)
    )
    return {
        "English docs (docs/*.md)": "\n\n".join(
            p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))
        ),
        "English prose (stdlib docstrings)": "\n\n".join(dict.fromkeys(docstrings)),
        "Python code (src/)": "\n\n".join(
            p.read_text() for p in sorted((ROOT / "src").rglob("*.py"))
        ),
        "Chinese (dashscope READMEs)": "\n\n".join(p.read_text() for p in chinese),
        "random letters": " ".join(words),
        "base64": "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=30000)),
        "hex digests": " ".join(f"{rng.getrandbits(256):064x}" for _ in range(400)),
        "numbers": " ".join(str(rng.randint(0, 10**9)) for _ in range(3000)),
    }


def table(columns: list[str], rows: list[list[object]]) -> str:
    return markdown_table(Table(title="", columns=columns, rows=rows))


def ratios(chunks: list[str], count: Callable[[str], int], real: list[int]) -> list[float]:
    return [count(c) / r for c, r in zip(chunks, real, strict=True)]


def splitter_rows(texts: dict[str, str], tokens: Callable[[str], int]) -> list[list[object]]:
    """Chunks of the frameworks' default splitters over the limit: by the tokenizer, by the
    estimate, by the previous rule (what long_text="error" would have refused)."""
    rows: list[list[object]] = []
    splitters: list[tuple[str, Callable[[str], list[str]]]] = []
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitters.append(
            ("RecursiveCharacterTextSplitter()", RecursiveCharacterTextSplitter().split_text)
        )
    except ImportError:  # pragma: no cover - a dev dependency
        pass
    try:
        from llama_index.core.node_parser import SentenceSplitter

        splitters.append(("SentenceSplitter()", SentenceSplitter().split_text))
    except ImportError:  # pragma: no cover
        pass
    for corpus in (
        "English docs (docs/*.md)",
        "English prose (stdlib docstrings)",
        "Chinese (dashscope READMEs)",
    ):
        for name, split in splitters:
            chunks = [c for c in split(texts[corpus]) if c.strip()]
            real = [tokens(c) for c in chunks]
            over = sum(r > MAX_TEXT_TOKENS for r in real)
            ours = sum(estimate_text_tokens(c) > MAX_TEXT_TOKENS for c in chunks)
            before = sum(previous_estimate(c) > MAX_TEXT_TOKENS for c in chunks)
            missed = sum(
                r > MAX_TEXT_TOKENS and estimate_text_tokens(c) <= MAX_TEXT_TOKENS
                for c, r in zip(chunks, real, strict=True)
            )
            rows.append([corpus, name, len(chunks), max(real), over, ours, missed, before])
    return rows


def report(quick: bool) -> str:
    from dashscope import get_tokenizer

    tokenizer = get_tokenizer("qwen-7b-chat")

    def tokens(text: str) -> int:
        return len(tokenizer.encode(text))

    texts = corpora()
    rows = []
    for name, text in texts.items():
        if quick:
            text = text[: CHUNK * 4]
        chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
        chunks = [c for c in chunks if len(c) > CHUNK // 2]
        real = [tokens(c) for c in chunks]
        ours = ratios(chunks, estimate_text_tokens, real)
        before = ratios(chunks, previous_estimate, real)
        quarter = ratios(chunks, four_characters, real)
        rows.append(
            [
                name,
                len(chunks),
                statistics.mean(ours),
                min(ours),
                max(ours),
                statistics.mean(before),
                min(before),
                statistics.mean(quarter),
                min(quarter),
            ]
        )
    sample = texts["English docs (docs/*.md)"][:4000]
    number = 200 if quick else 2000
    ours_us = timeit.timeit(lambda: estimate_text_tokens(sample), number=number) / number * 1e6
    real_us = timeit.timeit(lambda: tokens(sample), number=number // 10) / (number // 10) * 1e6
    command = "python benchmarks/token_estimate.py" + (" --quick" if quick else "")
    out = [
        "## Token estimate",
        "",
        "```",
        command,
        "```",
        "",
        "Estimated tokens divided by the tokens of Qwen's tokenizer (the one the `dashscope` "
        f"package ships), per {CHUNK:,}-character chunk of each corpus: 1.00 is exact, above "
        "counts high (a text may be split or refused that the service would take), below counts "
        "low (a text may be sent that the service refuses).",
        "",
        table(
            [
                "corpus",
                "chunks",
                "estimate: mean",
                "min",
                "max",
                "previous rule: mean",
                "min",
                "4 chars a token: mean",
                "min",
            ],
            rows,
        ),
        "",
        "What the frameworks' default splitters make of the same text: chunks over the "
        f"{MAX_TEXT_TOKENS:,}-token limit by the tokenizer, by the estimate, those the estimate "
        "missed (it passed them, the tokenizer counts them over), and by the previous rule.",
        "",
        table(
            [
                "corpus",
                "splitter",
                "chunks",
                "largest (tokens)",
                "over: tokenizer",
                "over: estimate",
                "missed",
                "over: previous rule",
            ],
            splitter_rows(texts, tokens),
        ),
        "",
        f"Speed on a 4,000-character chunk: the estimate {ours_us:.0f} us, the tokenizer "
        f"{real_us:.0f} us.",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the first chunks only")
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    args = parser.parse_args()
    started = time.perf_counter()
    body = report(args.quick)
    print(body)
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/token_estimate.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
