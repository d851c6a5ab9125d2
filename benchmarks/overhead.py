"""Client overhead: the CPU our client spends per part with the server answering at once, next
to the floor (base64 and JSON of the same bytes, and JSON-decoding the same answers).

The emulator runs in another process, so ``time.process_time`` here counts only the client.

    python benchmarks/overhead.py [--quick]
"""

from __future__ import annotations

import asyncio
import base64
import cProfile
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import (
    API_KEY,
    MODEL,
    TEXTS_PER_REQUEST,
    Emulator,
    Result,
    Table,
    main,
    make_texts,
    measure,
    noise_png,
)

PROFILE_TITLE = "Where the client's CPU goes ({}): cProfile by CPU time, one worker thread"
IMAGE_SIDE = 1000  # an incompressible 1000x1000 PNG is 3.0 MB, just under the 3 MiB limit


def cpu_of(action: Callable[[], Any], repeats: int) -> float:
    """The least CPU time of ``repeats`` runs: noise on a shared machine only adds time."""
    best = float("inf")
    for _ in range(repeats):
        with measure() as took:
            action()
        best = min(best, took.cpu)
    return best


def text_bodies(texts: list[str]) -> Iterator[bytes]:
    """The request bodies of the texts, built as plainly as Python allows."""
    for start in range(0, len(texts), TEXTS_PER_REQUEST):
        chunk = texts[start : start + TEXTS_PER_REQUEST]
        yield json.dumps({"model": MODEL, "input": chunk}, separators=(",", ":")).encode()


def image_bodies(paths: list[Path], per_request: int) -> Iterator[bytes]:
    """Read, base64 and JSON: the request bodies of the image files, as plainly as can be."""
    for start in range(0, len(paths), per_request):
        contents = [
            {"image": "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()}
            for p in paths[start : start + per_request]
        ]
        document = {"model": MODEL, "input": {"contents": contents}}
        yield json.dumps(document, separators=(",", ":")).encode()


def encode_only(bodies: Callable[[], Iterator[bytes]]) -> Callable[[], None]:
    def action() -> None:
        for _ in bodies():
            pass

    return action


def round_trip(url: str, bodies: Callable[[], Iterator[bytes]]) -> Callable[[], None]:
    """Build each body, POST it with a bare httpx client, parse the answer with pydantic-core's
    JSON parser (the fastest at hand): the same bytes over the same socket, and nothing else."""
    import httpx
    import pydantic_core

    http = httpx.Client(timeout=60)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

    def action() -> None:
        for body in bodies():
            response = http.post(url + "/v1/embeddings", content=body, headers=headers)
            response.raise_for_status()
            pydantic_core.from_json(response.content)

    return action


def top_functions(action: Callable[[], Any], count: int = 10) -> list[list[Any]]:
    """cProfile of one run on this thread, timed by CPU (waiting on the socket costs nothing):
    the functions with the most CPU time of their own."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    action()
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    ranked = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    for (filename, line, name), (_calls, ncalls, tottime, _cumtime, _callers) in ranked[:count]:
        label = f"{name} ({Path(filename).name}:{line})" if line else name
        rows.append([label, ncalls, f"{100 * tottime / total:.0f}%"])
    return rows


def run(quick: bool) -> Result:
    from tongyi_vision import AsyncClient, Client, Image

    n_texts = 1000 if quick else 4000
    n_images = 4 if quick else 16
    repeats = 1 if quick else 3
    texts = make_texts(n_texts, tag="overhead")
    folder = Path(tempfile.mkdtemp(prefix="tongyi-bench-overhead-"))
    try:
        paths = []
        for i in range(n_images):
            path = folder / f"image-{i:03d}.png"
            path.write_bytes(noise_png(1000 + i, IMAGE_SIDE))
            paths.append(path)
        image_bytes = paths[0].stat().st_size
        with Emulator() as emulator:
            url = emulator.base_url
            with Client(API_KEY, base_url=url) as client:
                # Find the core's packing of these images from what it sends.
                client.embed([Image(p) for p in paths[:4]])
                per_request = max(1, round(4 / client.usage.requests))

                def sync_texts() -> None:
                    client.embed_texts(texts)

                def sync_images() -> None:
                    client.embed([Image(p) for p in paths])

                measured = {
                    ("Client", "text"): cpu_of(sync_texts, repeats),
                    ("Client", "image"): cpu_of(sync_images, repeats),
                }

            loop = asyncio.new_event_loop()
            aclient = AsyncClient(API_KEY, base_url=url)
            loop.run_until_complete(aclient.embed_texts(["warm up"]))
            measured["AsyncClient", "text"] = cpu_of(
                lambda: loop.run_until_complete(aclient.embed_texts(texts)), repeats
            )
            measured["AsyncClient", "image"] = cpu_of(
                lambda: loop.run_until_complete(aclient.embed([Image(p) for p in paths])), repeats
            )
            loop.run_until_complete(aclient.aclose())
            loop.close()

            def texts_built() -> Iterator[bytes]:
                return text_bodies(texts)

            def images_built() -> Iterator[bytes]:
                return image_bodies(paths, per_request)

            floors = {
                ("text", "body"): cpu_of(encode_only(texts_built), repeats),
                ("text", "trip"): cpu_of(round_trip(url, texts_built), repeats),
                ("image", "body"): cpu_of(encode_only(images_built), repeats),
                ("image", "trip"): cpu_of(round_trip(url, images_built), repeats),
            }

            # One worker runs the whole call on this thread, where cProfile can see it.
            with Client(API_KEY, base_url=url, max_concurrency=1) as single:
                text_profile = top_functions(lambda: single.embed_texts(texts[:2000]))
                image_profile = top_functions(lambda: single.embed([Image(p) for p in paths]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    counts = {"text": n_texts, "image": n_images}
    rows = []
    for kind, unit in (("text", "us"), ("image", "ms")):
        scale = 1e6 if unit == "us" else 1e3
        body = floors[kind, "body"] / counts[kind] * scale
        trip = floors[kind, "trip"] / counts[kind] * scale
        for client in ("Client", "AsyncClient"):
            ours = measured[client, kind] / counts[kind] * scale
            rows.append(
                [
                    f"{kind} part ({unit})",
                    client,
                    ours,
                    body,
                    trip,
                    f"{ours / body:.1f}x",
                    f"{ours / trip:.1f}x",
                ]
            )
    table = Table(
        [
            "CPU per part",
            "client",
            "ours",
            "floor: build the body",
            "floor: build, POST, parse",
            "ours / build floor",
            "ours / POST floor",
        ],
        rows,
    )
    setup = [
        "emulator: separate process, no latency, no limits; client CPU from time.process_time "
        "(all threads of the client process), the least of "
        f"{repeats} runs",
        f"{n_texts:,} distinct texts ({TEXTS_PER_REQUEST} per request); {n_images} distinct "
        f"incompressible {IMAGE_SIDE}x{IMAGE_SIDE} PNG files of {image_bytes:,} bytes on disk "
        f"({per_request} per request by the core's 8 MiB body cap)",
        "floor, build: read the file, base64 and json.dumps the same request bodies; floor, "
        "POST: that, then POST each body with a bare httpx.Client to the same emulator and "
        "parse the answer (768 floats a part) with pydantic_core.from_json",
    ]
    profiles = [
        Table(["function", "calls", "share of CPU"], text_profile, PROFILE_TITLE.format("texts")),
        Table(["function", "calls", "share of CPU"], image_profile, PROFILE_TITLE.format("images")),
    ]
    return Result("overhead", "Client overhead", setup, [table, *profiles])


if __name__ == "__main__":
    sys.exit(main(run))
