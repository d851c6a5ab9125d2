"""Under a rate limit: the emulator refuses requests above ``--rps``/``--rpm`` (or tokens
above ``--tpm``) with 429 and the exact Retry-After. Side by side, in one run: the limit
configured (``RateLimit``) or unknown (only 429s to learn from), the sync and the async
client, a requests and a tokens limit, and the openai SDK as users call the gateway with it.
Every part must come back, in its place. Targets: with the limit configured, at least 95%
of the allowed rate with under 1% of requests refused; unknown, at least 90% and under 10%.

    python benchmarks/rate_limit.py            # print the section
    python benchmarks/rate_limit.py --write    # and rewrite it in docs/benchmarks.md
    python benchmarks/rate_limit.py --quick    # a few seconds a run; prints, writes nothing

The rate is measured the same way for every row, in the steady state: the answers (or the
tokens they billed) between the first and the last tenth of the run's answers, over the time
between them; so neither the client's start nor the tail of its last requests counts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from _common import (
    API_KEY,
    MODEL,
    TEXTS_PER_REQUEST,
    Emulator,
    Table,
    Target,
    make_texts,
    markdown_table,
    write_section,
)

SECTION = "rate-limit"
LATENCY = 0.1
CONCURRENCY = 16
SECONDS = 15  # of work at the allowed rate, per run (--quick: 3)
PEER_RETRIES = 10  # the openai SDK's default of 2 gives up under these limits
TARGETS = {"configured": (0.95, 0.01), "unknown": (0.90, 0.10)}  # share of the rate, refused


@dataclass(frozen=True)
class Scenario:
    """An emulator limit: its flags, the ``RateLimit`` that says the same, and the rate it
    allows (requests or tokens a second)."""

    name: str
    flags: dict[str, Any]
    limit: tuple[float | None, float | None]  # requests and tokens per minute
    allowed: float
    unit: str
    requests_per_second: float  # about how many of our requests the limit lets through

    def requests(self, seconds: float) -> int:
        return round(self.requests_per_second * seconds)


@dataclass
class Outcome:
    """What one run gave: the vectors, when each request was answered and the tokens its
    answer billed, and the wall time (client set-up to close)."""

    vectors: list[list[float] | None]
    answers: list[tuple[float, int]] = field(default_factory=list)
    wall: float = 0.0
    failure: str | None = None

    def steady(self, unit: str) -> float:
        """Requests (or tokens) a second between the first and the last tenth of the answers."""
        answers = sorted(self.answers)
        skip = len(answers) // 10
        middle = answers[skip : len(answers) - skip]
        if len(middle) < 2 or middle[-1][0] <= middle[0][0]:
            return 0.0
        amount = (len(middle) - 1) if unit == "requests" else sum(t for _, t in middle[1:])
        return amount / (middle[-1][0] - middle[0][0])


def scenarios(tokens_per_request: float) -> list[Scenario]:
    # The tokens limit is about 40 of these requests a second (about a million tokens a
    # minute, as real accounts have): a second then holds many requests, so its share of
    # the limit is not decided by how whole requests happen to fit into it.
    tpm = round(60 * 40 * tokens_per_request)
    return [
        Scenario("--rps 10", {"rps": 10}, (600, None), 10, "requests", 10),
        Scenario("--rpm 1200", {"rpm": 1200}, (1200, None), 20, "requests", 20),
        Scenario(f"--tpm {tpm:,}", {"tpm": tpm}, (None, tpm), tpm / 60, "tokens", 40),
    ]


def reference(texts: list[str]) -> list[list[float]]:
    """The vectors an unlimited emulator gives (equal content, equal vectors)."""
    from tongyi_vision import Client

    with Emulator() as emulator, Client(API_KEY, base_url=emulator.base_url) as client:
        return client.embed_texts(texts).vectors


def _stats(emulator: Emulator) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {API_KEY}"}  # /stats asks for the emulator's key
    response = httpx.get(emulator.base_url + "/stats", headers=headers, timeout=10)
    response.raise_for_status()
    return dict(response.json())


# --- the runs --------------------------------------------------------------------------------


def ours(kind: str, url: str, texts: list[str], tokens: list[int], limit: Any) -> Outcome:
    """``tongyi_vision.Client`` or ``AsyncClient``, ``max_concurrency=16``, ``rate_limit``."""
    from tongyi_vision import AsyncClient, Client, ProgressEvent

    outcome = Outcome([None] * len(texts))
    lock = threading.Lock()

    def progress(event: ProgressEvent) -> None:
        if event.vectors:
            billed = sum(tokens[i] for i in event.vectors)
            with lock:
                outcome.answers.append((time.perf_counter(), billed))

    options: dict[str, Any] = {
        "base_url": url,
        "max_concurrency": CONCURRENCY,
        "rate_limit": limit,
        "progress": progress,
    }
    started = time.perf_counter()
    if kind == "Client":
        with Client(API_KEY, **options) as client:
            outcome.vectors = list(client.embed_texts(texts).vectors)
        outcome.wall = time.perf_counter() - started
        return outcome

    async def run() -> None:
        async with AsyncClient(API_KEY, **options) as client:
            outcome.vectors = list((await client.embed_texts(texts)).vectors)
        outcome.wall = time.perf_counter() - started

    # nothing returned from the coroutine: asyncio.run formats the main task's result (every
    # vector) into a string on the way out, which would take seconds here
    asyncio.run(run())
    return outcome


def _batches(texts: list[str]) -> list[range]:
    step = TEXTS_PER_REQUEST
    return [range(i, min(i + step, len(texts))) for i in range(0, len(texts), step)]


def openai_threads(url: str, texts: list[str], tokens: list[int]) -> Outcome:
    """``openai.OpenAI`` (``max_retries=10``), a request of 20 texts on each of 16 threads."""
    import openai

    outcome = Outcome([None] * len(texts))
    lock = threading.Lock()
    started = time.perf_counter()
    with openai.OpenAI(api_key=API_KEY, base_url=url + "/v1", max_retries=PEER_RETRIES) as sdk:

        def send(batch: range) -> None:
            answer = sdk.embeddings.create(model=MODEL, input=[texts[i] for i in batch])
            with lock:
                outcome.answers.append((time.perf_counter(), sum(tokens[i] for i in batch)))
                for item in answer.data:
                    outcome.vectors[batch[item.index]] = [float(x) for x in item.embedding]

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(send, _batches(texts)))
    outcome.wall = time.perf_counter() - started
    return outcome


def openai_async(url: str, texts: list[str], tokens: list[int]) -> Outcome:
    """``openai.AsyncOpenAI`` (``max_retries=10``), 16 requests of 20 texts at once."""
    import openai

    outcome = Outcome([None] * len(texts))
    started = time.perf_counter()

    async def run() -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        async with openai.AsyncOpenAI(
            api_key=API_KEY, base_url=url + "/v1", max_retries=PEER_RETRIES
        ) as sdk:

            async def send(batch: range) -> None:
                async with gate:
                    answer = await sdk.embeddings.create(
                        model=MODEL, input=[texts[i] for i in batch]
                    )
                outcome.answers.append((time.perf_counter(), sum(tokens[i] for i in batch)))
                for item in answer.data:
                    outcome.vectors[batch[item.index]] = [float(x) for x in item.embedding]

            await asyncio.gather(*(send(b) for b in _batches(texts)))
        outcome.wall = time.perf_counter() - started

    asyncio.run(run())
    return outcome


def _run(who: str, url: str, texts: list[str], tokens: list[int], limit: Any) -> Outcome:
    if who.startswith("tongyi_vision."):
        return ours(who.removeprefix("tongyi_vision."), url, texts, tokens, limit)
    if who.startswith("openai.OpenAI"):
        return openai_threads(url, texts, tokens)
    return openai_async(url, texts, tokens)


# --- the report ------------------------------------------------------------------------------


def report(quick: bool) -> tuple[str, list[Target]]:
    from tongyi_vision import RateLimit, estimate_text_tokens

    seconds = 3 if quick else SECONDS
    load_before = os.getloadavg()[0]
    pool = make_texts(40 * seconds * TEXTS_PER_REQUEST, tag="rate")
    tokens = [estimate_text_tokens(t) for t in pool]  # what the emulator bills each text
    per_request = sum(tokens) / len(pool) * TEXTS_PER_REQUEST
    expected = reference(pool)
    rows: list[list[Any]] = []
    targets: list[Target] = []
    for scenario in scenarios(per_request):
        count = scenario.requests(seconds) * TEXTS_PER_REQUEST
        texts, billed, wanted = pool[:count], tokens[:count], expected[:count]
        runs = [
            (f"tongyi_vision.{kind}", known)
            for known in ("configured", "unknown")
            for kind in ("Client", "AsyncClient")
        ]
        runs += [
            (f"openai.OpenAI, {CONCURRENCY} threads", "unknown"),
            (f"openai.AsyncOpenAI, {CONCURRENCY} at once", "unknown"),
        ]
        for who, known in runs:
            name = f"{scenario.name}, limit {known}: {who}"
            limit = RateLimit(*scenario.limit) if known == "configured" else None
            # A fresh server per run: no window carries over from the run before.
            with Emulator(latency=LATENCY, **scenario.flags) as emulator:
                time.sleep(0.2)
                try:
                    outcome = _run(who, emulator.base_url, texts, billed, limit)
                except Exception as exc:  # a peer that gives up: say so, and go on
                    outcome = Outcome([], failure=f"raised {type(exc).__name__}")
                stats = _stats(emulator)
            rows.append(_row(name, scenario, outcome, stats, wanted))
            print(f"  {name}: {rows[-1][4]} s, {rows[-1][6]} of the rate, {rows[-1][3]} refused",
                  file=sys.stderr, flush=True)  # fmt: skip
            if who.startswith("tongyi_vision"):
                targets += _targets(name, known, scenario, outcome, stats, wanted)
    load_after = os.getloadavg()[0]
    table = Table(
        [
            "run",
            "requests sent",
            "429s",
            "refused",
            "wall s",
            "steady rate",
            "share of the allowed rate",
            "parts",
        ],
        rows,
    )
    command = "python benchmarks/rate_limit.py --write" + (" --quick" if quick else "")
    setup = [
        f"emulator: a separate process per run, latency {LATENCY * 1000:.0f} ms, with one "
        "limit each: `--rps 10` (the issue's case), `--rpm 1200` (20 requests a second: the "
        "service enforces a 60th of the minute each second) or `--tpm` about 40 of these "
        "requests a second; 429s carry the exact wait as Retry-After",
        f"requests of {TEXTS_PER_REQUEST} distinct texts (about {per_request:.0f} tokens), "
        f"about {seconds} s of work at each limit",
        f"our clients: `max_concurrency={CONCURRENCY}`, default `max_retries`; 'configured' "
        "passes `RateLimit(...)` with the emulator's own figure, 'unknown' passes none (the "
        "client learns the limit from its 429s)",
        f"the openai SDK (`max_retries={PEER_RETRIES}`: its default of 2 gives up here; its "
        f"default base64 answers), {CONCURRENCY} requests at a time, as users call the gateway "
        "with it; it honours Retry-After, and knows no limit before a 429",
        "steady rate: the answers (or their billed tokens) between the first and the last "
        "tenth of the run's answers, over the time between them; wall: client set-up to close",
        "parts: every vector compared with the one an unlimited emulator returns for the text",
        f"load average (1 min) of this shared 2-core machine: {load_before:.1f} at the start, "
        f"{load_after:.1f} at the end",
    ]
    lines = [
        "## Under a rate limit",
        "",
        "```",
        command,
        "```",
        "",
        *[f"- {line}" for line in setup],
        "",
        markdown_table(table),
        "",
        "**Targets**",
        "",
        *[
            f"- {'met' if t.met else '**missed**'}: {t.goal} ({t.detail})"
            for t in targets
            if t.met is not None
        ],
    ]
    return "\n".join(lines), targets


def _row(
    name: str,
    scenario: Scenario,
    outcome: Outcome,
    stats: dict[str, int],
    wanted: list[list[float]],
) -> list[Any]:
    sent, refused = stats["requests"], stats["throttled"]
    share = f"{100 * refused / sent:.1f}%" if sent else "-"
    if outcome.failure is not None:
        return [name, sent, refused, share, "-", "-", "-", outcome.failure]
    rate = outcome.steady(scenario.unit)
    lost, misplaced = _check(outcome, wanted)
    return [
        name,
        sent,
        refused,
        share,
        round(outcome.wall, 1),
        f"{rate:,.1f} {scenario.unit}/s",
        f"{100 * rate / scenario.allowed:.0f}%",
        f"{lost} lost, {misplaced} misplaced",
    ]


def _check(outcome: Outcome, wanted: list[list[float]]) -> tuple[int, int]:
    """Parts without a vector, and parts whose vector is not the one of their text (the
    SDK's base64 answers carry float32: compared at that precision)."""
    import numpy

    vectors = outcome.vectors
    lost = sum(1 for v in vectors if not v) + max(0, len(wanted) - len(vectors))
    misplaced = 0
    for got, want in zip(vectors, wanted, strict=False):
        if got and got != want and got != numpy.float32(want).astype(float).tolist():
            misplaced += 1
    return lost, misplaced


def _targets(
    name: str,
    known: str,
    scenario: Scenario,
    outcome: Outcome,
    stats: dict[str, int],
    wanted: list[list[float]],
) -> list[Target]:
    if outcome.failure is not None:
        return [Target(f"{name}: every part embedded", False, outcome.failure)]
    lost, misplaced = _check(outcome, wanted)
    rate = outcome.steady(scenario.unit) / scenario.allowed
    sent, refused = stats["requests"], stats["throttled"]
    least, most = TARGETS[known]
    return [
        Target(
            f"{name}: no part lost or misplaced",
            lost == 0 and misplaced == 0,
            f"{len(wanted) - lost:,} of {len(wanted):,} vectors, {misplaced} misplaced",
        ),
        Target(
            f"{name}: at least {least:.0%} of the allowed rate, under {most:.0%} refused",
            rate >= least and refused < most * sent,
            f"{rate:.0%} of {scenario.allowed:,.0f} {scenario.unit}/s; {refused} of {sent} "
            f"requests refused ({refused / sent:.1%})",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s a run; prints, writes nothing")
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    args = parser.parse_args()
    body, targets = report(args.quick)
    print(body)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/rate_limit.py", body)
    missed = [t.goal for t in targets if t.met is False]
    if missed:
        print(f"{len(missed)} targets missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
