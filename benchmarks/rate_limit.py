"""Under a rate limit: the emulator refuses requests above ``--rpm`` (or tokens above ``--tpm``)
with 429 and Retry-After. Side by side, today's behaviour (the limit unknown: only 429s to learn
from) and a configured ``RateLimit``, for the sync and the async client. Every part must come
back, in its place; with the limit configured the clients should reach at least 95% of the
allowed rate with under 1% of requests refused, with it unknown at least 90% and under 10%.

    python benchmarks/rate_limit.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from _common import (
    API_KEY,
    TEXTS_PER_REQUEST,
    Emulator,
    Result,
    Table,
    Target,
    main,
    make_texts,
    measure,
)

RPM = 1200  # 20 requests a second
LATENCY = 0.1
CONCURRENCY = 16
REQUESTS_PER_SECOND_UNDER_TPM = 10  # the --tpm scenario allows about this many requests
TARGETS = {"configured": (0.95, 0.01), "unknown": (0.90, 0.10)}  # share of rate, refused


def reference(texts: list[str]) -> tuple[list[list[float]], int]:
    """The vectors an unlimited emulator gives (equal content, equal vectors) and the tokens
    the texts are billed."""
    from tongyi_vision import Client

    with Emulator() as emulator, Client(API_KEY, base_url=emulator.base_url) as client:
        result = client.embed_texts(texts)
        return result.vectors, result.usage.total_tokens


def _stats(emulator: Emulator) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {API_KEY}"}  # /stats asks for the emulator's key
    response = httpx.get(emulator.base_url + "/stats", headers=headers, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def run(quick: bool) -> Result:
    from tongyi_vision import AsyncClient, Client, RateLimit

    seconds = 2 if quick else 8
    requests_needed = RPM // 60 * seconds
    texts = make_texts(requests_needed * TEXTS_PER_REQUEST, tag="rate")
    expected, tokens = reference(texts)
    tpm = round(60 * REQUESTS_PER_SECOND_UNDER_TPM * tokens / requests_needed)
    scenarios: dict[str, tuple[dict[str, Any], Callable[[], Any], float, str]] = {
        # name: (emulator flags, the RateLimit that matches them, the allowed rate, its unit)
        f"--rpm {RPM}": (
            {"rpm": RPM},
            lambda: RateLimit(requests_per_minute=RPM),
            RPM / 60,
            "requests/s",
        ),
        f"--tpm {tpm}": (
            {"tpm": tpm},
            lambda: RateLimit(tokens_per_minute=tpm),
            tpm / 60,
            "tokens/s",
        ),
    }
    rows: list[list[Any]] = []
    targets: list[Target] = []
    for scenario, (flags, make_limit, allowed, unit) in scenarios.items():
        for known in ("unknown", "configured"):
            for kind in ("Client", "AsyncClient"):
                name = f"{scenario}, limit {known}: tongyi_vision.{kind}"
                options: dict[str, Any] = {
                    "max_concurrency": CONCURRENCY,
                    "rate_limit": make_limit() if known == "configured" else None,
                }
                # A fresh server per run: no window carries over from the run before.
                with Emulator(latency=LATENCY, **flags) as emulator:
                    options["base_url"] = emulator.base_url

                    def call(kind: str = kind, options: dict[str, Any] = options) -> Any:
                        if kind == "Client":
                            with Client(API_KEY, **options) as client:
                                return client.embed_texts(texts)

                        async def go() -> Any:
                            async with AsyncClient(API_KEY, **options) as client:
                                return await client.embed_texts(texts)

                        return asyncio.run(go())

                    time.sleep(0.2)
                    try:
                        with measure() as took:
                            result = call()
                    except Exception as exc:
                        failure = f"raised {type(exc).__name__} after {took.wall:.1f} s"
                        rows.append([name, "-", "-", "-", took.wall, "-", "-", failure])
                        targets.append(Target(f"{name}: every part embedded", False, failure))
                        print(f"  {name}: {failure}", flush=True)
                        continue
                    stats = _stats(emulator)
                vectors = result.vectors
                lost = sum(1 for v in vectors if not v) + max(0, len(texts) - len(vectors))
                misplaced = sum(1 for g, w in zip(vectors, expected, strict=False) if g != w)
                refused = stats["throttled"]
                sent = stats["requests"]
                done = requests_needed if unit == "requests/s" else stats["billed_tokens"]
                share = done / took.wall / allowed
                refused_share = refused / sent if sent else 0.0
                rows.append(
                    [
                        name,
                        sent,
                        refused,
                        f"{100 * refused_share:.1f}%",
                        took.wall,
                        f"{done / took.wall:.1f} {unit}",
                        f"{100 * share:.0f}%",
                        f"{lost} lost, {misplaced} misplaced",
                    ]
                )
                least, most = TARGETS[known]
                targets.append(
                    Target(
                        f"{name}: no part lost or misplaced",
                        lost == 0 and misplaced == 0,
                        f"{len(vectors):,} vectors for {len(texts):,} parts",
                    )
                )
                targets.append(
                    Target(
                        f"{name}: at least {least:.0%} of the allowed rate, under "
                        f"{most:.0%} refused",
                        share >= least and refused_share < most,
                        f"{share:.0%} of {allowed:g} {unit}; {refused} of {sent} requests "
                        f"refused ({refused_share:.1%})",
                    )
                )
                print(
                    f"  {name}: {took.wall:.1f} s, {share:.0%} of the rate, "
                    f"{refused_share:.1%} refused",
                    flush=True,
                )
    table = Table(
        [
            "run",
            "requests sent",
            "429s",
            "refused",
            "wall s",
            "achieved",
            "share of the allowed rate",
            "parts",
        ],
        rows,
    )
    setup = [
        f"emulator: a separate process per run, latency {LATENCY * 1000:.0f} ms, with --rpm "
        f"{RPM} (so {RPM // 60} requests a second) or --tpm {tpm:,} (about "
        f"{REQUESTS_PER_SECOND_UNDER_TPM} of these requests a second)",
        f"{len(texts):,} distinct texts = {requests_needed} requests of {TEXTS_PER_REQUEST} "
        f"({tokens:,} tokens): about {seconds} s of work at --rpm",
        f"clients: max_concurrency={CONCURRENCY}, default max_retries; 'limit configured' "
        "passes RateLimit(requests_per_minute=...) or RateLimit(tokens_per_minute=...) with "
        "the emulator's own figure; achieved = requests (or billed tokens) / wall time, "
        "client set-up and close included",
        "every vector is compared with the vector an unlimited emulator returns for the same text",
    ]
    return Result("rate_limit", "Under a rate limit", setup, [table], targets)


if __name__ == "__main__":
    sys.exit(main(run))
