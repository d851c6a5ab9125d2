"""What each ``res_level`` costs: one sample image embedded at every tier by the dated
snapshots, against the emulator, with the tokens billed and the dollars they come to.

    python benchmarks/res_level_cost.py            # print the section
    python benchmarks/res_level_cost.py --write    # and rewrite it in docs/models.md

The emulator bills a snapshot's image at its tier's token count, the figures the providers'
pages give; the dollars are the client's own (``usage.cost_usd``, from the price per token of
``tongyi_vision.MODELS``). The client's estimate, which packs requests and predicts the bill,
is shown beside the bill: a difference between the two would be a bug.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import API_KEY, ROOT, Emulator, Table, markdown_table, write_section

from tongyi_vision import Client, Image
from tongyi_vision.samples.images import image_bytes, sample_image
from tongyi_vision.wire.limits import (
    DEFAULT_RES_LEVEL,
    FLASH_SNAPSHOT,
    MODELS,
    PLUS_SNAPSHOT,
    RES_LEVEL_TOKENS,
    image_tokens_estimate,
)

SECTION = "res-level-cost"
DOC = ROOT / "docs" / "models.md"
SAMPLE = "red-circle.png"
SIZE = 1024
IMAGES = 1000  # the dollar columns are per this many images


def billed(emulator: Emulator, model: str, res_level: int, picture: bytes) -> tuple[int, float]:
    """Image tokens and dollars the emulator bills for ``picture`` at ``res_level``."""
    with Client(
        API_KEY,
        base_url=emulator.base_url,
        dialect="dashscope",
        model=model,
        res_level=res_level,
    ) as client:
        usage = client.embed([Image(picture)]).usage
    return usage.media_tokens, usage.cost_usd


def report() -> str:
    picture = image_bytes(sample_image(SAMPLE), SIZE)
    rows = []
    tokens = []
    with Emulator() as emulator:
        for tier in range(len(RES_LEVEL_TOKENS)):
            flash_tokens, flash_cost = billed(emulator, FLASH_SNAPSHOT, tier, picture)
            plus_tokens, plus_cost = billed(emulator, PLUS_SNAPSHOT, tier, picture)
            if flash_tokens != plus_tokens:
                raise RuntimeError(f"res_level {tier}: flash and plus billed different tokens")
            tokens.append(flash_tokens)
            label = f"{tier} (default)" if tier == DEFAULT_RES_LEVEL else str(tier)
            rows.append(
                [
                    label,
                    f"{flash_tokens:,}",
                    f"{image_tokens_estimate(tier):,}",
                    f"${flash_cost * IMAGES:.4f}",
                    f"${plus_cost * IMAGES:.4f}",
                ]
            )
    flash_price = MODELS[FLASH_SNAPSHOT].media_price_per_million
    plus_price = MODELS[PLUS_SNAPSHOT].media_price_per_million
    table = Table(
        [
            "res_level",
            "image tokens billed",
            "client's estimate",
            f"flash snapshot, per {IMAGES:,} images",
            f"plus snapshot, per {IMAGES:,} images",
        ],
        rows,
    )
    out = [
        f"One {SIZE} x {SIZE} PNG (the `{SAMPLE}` sample), embedded alone at each tier against "
        f'the emulator, `dialect="dashscope"`. Media tokens cost ${flash_price:.2f} per '
        f"million on the flash snapshot and ${plus_price:.2f} on the plus snapshot. A tier "
        "bills a fixed count whatever the picture's size (the pages' figures, which the "
        "emulator follows).",
        "",
        markdown_table(table),
        "",
        f"Tier 3 costs {tokens[3] / tokens[0]:.1f} times tier 0, and "
        f"{tokens[3] / tokens[DEFAULT_RES_LEVEL]:.1f} times the default. "
        "The undated names take no `res_level`; the client estimates their images at the "
        "default tier.",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    args = parser.parse_args()
    started = time.perf_counter()
    body = report()
    print(body)
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    if args.write:
        write_section(
            SECTION,
            "benchmarks/res_level_cost.py",
            body,
            doc=DOC,
            note="python benchmarks/res_level_cost.py --write rewrites it",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
