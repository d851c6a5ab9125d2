"""Under a rate limit: the emulator allows R requests a second and answers 429 with Retry-After
above it. Every part must come back, in its place, and the achieved request rate should be at
least 85% of R.

    python benchmarks/rate_limit.py [--quick]
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

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

RPS = 20
LATENCY = 0.1
CONCURRENCY = 16
TARGET_SHARE = 0.85
DEFAULT_RETRIES = 3  # the core's default
MORE_RETRIES = 10


def reference_vectors(texts: list[str]) -> list[list[float]]:
    """The vectors an unlimited emulator gives: equal content gives equal vectors."""
    from tongyi_vision import Client

    with Emulator() as emulator, Client(API_KEY, base_url=emulator.base_url) as client:
        return client.embed_texts(texts).vectors


def run(quick: bool) -> Result:
    seconds = 2 if quick else 10
    requests_needed = RPS * seconds
    texts = make_texts(requests_needed * TEXTS_PER_REQUEST, tag="rate")
    expected = reference_vectors(texts)
    rows: list[list[Any]] = []
    targets: list[Target] = []
    with Emulator(latency=LATENCY, rps=RPS) as emulator:
        from tongyi_vision import AsyncClient, Client

        def sync_call(retries: int) -> Any:
            with Client(
                API_KEY,
                base_url=emulator.base_url,
                max_concurrency=CONCURRENCY,
                max_retries=retries,
            ) as client:
                return client.embed_texts(texts)

        async def async_call(retries: int) -> Any:
            async with AsyncClient(
                API_KEY,
                base_url=emulator.base_url,
                max_concurrency=CONCURRENCY,
                max_retries=retries,
            ) as client:
                return await client.embed_texts(texts)

        contenders: list[tuple[str, Callable[[], Any]]] = []
        for retries in (DEFAULT_RETRIES,) if quick else (DEFAULT_RETRIES, MORE_RETRIES):
            suffix = f" (max_retries={retries})"
            contenders.append(("tongyi_vision.Client" + suffix, partial(sync_call, retries)))
            contenders.append(
                (
                    "tongyi_vision.AsyncClient" + suffix,
                    lambda retries=retries: asyncio.run(async_call(retries)),
                )
            )
        for name, call in contenders:
            # Let the server's window empty between clients.
            time.sleep(1.2)
            try:
                with measure() as took:
                    result = call()
            except Exception as exc:
                partial_result = getattr(exc, "partial", None)
                done = 0 if partial_result is None else sum(1 for v in partial_result.vectors if v)
                failure = (
                    f"raised {type(exc).__name__} after {took.wall:.1f} s with {done:,} of "
                    f"{len(texts):,} parts done (kept in error.partial for resume=)"
                )
                rows.append([name, len(texts), "-", "-", "-", took.wall, "-", "-", "-", failure])
                targets.append(Target(f"{name}: every part embedded", False, failure))
                print(f"  {name}: {failure}", flush=True)
                continue
            vectors = result.vectors
            lost = sum(1 for v in vectors if not v) + max(0, len(texts) - len(vectors))
            misplaced = sum(1 for got, want in zip(vectors, expected, strict=False) if got != want)
            throttled = result.usage.requests - requests_needed
            achieved = requests_needed / took.wall
            share = achieved / RPS
            rows.append(
                [
                    name,
                    len(texts),
                    requests_needed,
                    throttled,
                    result.usage.retries,
                    took.wall,
                    achieved,
                    f"{100 * share:.0f}%",
                    lost,
                    misplaced,
                ]
            )
            targets.append(
                Target(
                    f"{name}: no part lost or misplaced",
                    lost == 0 and misplaced == 0,
                    f"{len(vectors):,} vectors for {len(texts):,} parts, {lost} missing, "
                    f"{misplaced} differ from an unlimited server's",
                )
            )
            targets.append(
                Target(
                    f"{name}: achieved rate at least {TARGET_SHARE:.0%} of R",
                    share >= TARGET_SHARE,
                    f"{achieved:.1f} requests/s of R = {RPS} ({share:.0%}); "
                    f"{throttled} answers were 429",
                )
            )
            print(f"  {name}: {took.wall:.1f} s, {achieved:.1f} req/s", flush=True)
    table = Table(
        [
            "client",
            "parts",
            "requests needed",
            "429s",
            "retries",
            "wall s",
            "achieved req/s",
            "share of R",
            "parts lost",
            "parts misplaced",
        ],
        rows,
    )
    ideal = math.ceil(requests_needed / RPS)
    setup = [
        f"emulator: separate process, R = {RPS} requests/s (429 with Retry-After above it), "
        f"latency {LATENCY * 1000:.0f} ms",
        f"{len(texts):,} distinct texts = {requests_needed} requests of {TEXTS_PER_REQUEST}: "
        f"about {ideal} s of work at R",
        f"clients: max_concurrency={CONCURRENCY}, with the default max_retries={DEFAULT_RETRIES} "
        f"and with {MORE_RETRIES}; achieved rate = requests needed / wall time (client "
        "set-up and close included)",
        "every vector is compared with the vector an unlimited emulator returns for the same text",
    ]
    return Result("rate_limit", "Under a rate limit", setup, [table], targets)


if __name__ == "__main__":
    sys.exit(main(run))
