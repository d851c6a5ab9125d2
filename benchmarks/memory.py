"""Memory: peak resident memory while a folder of ~1 MB images is embedded through our LangChain
loader and LlamaIndex reader, next to LlamaIndex's SimpleDirectoryReader with a naive loop, at
two folder sizes. Each scenario runs in a fresh process; the emulator in another.

    python benchmarks/memory.py [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from _common import (
    API_KEY,
    MODEL,
    Emulator,
    PeakRss,
    Result,
    Table,
    Target,
    current_rss,
    main,
    max_rss,
    mib,
    one_mb_image,
)

CHUNK = 64  # documents embedded per call in the streaming scenarios (8 with --quick)
SCENARIOS = {
    "langchain": "TongyiImageLoader.lazy_load -> TongyiVisionEmbeddings.embed_documents, "
    "{chunk} at a time",
    "llama_index": "TongyiImageReader.lazy_load_data -> "
    "TongyiVisionEmbedding.get_image_embedding_batch, {chunk} at a time",
    "naive": "SimpleDirectoryReader.load_data (every file), then "
    "TongyiVisionEmbedding.get_image_embedding_batch of all of them",
}
# Flat: four times the images raise the peak (above the RSS before) by at most this share. The
# peak is a maximum over every request in flight, so it creeps up a little with more requests
# even when nothing is kept; a pipeline that held the images would raise it about fourfold.
FLAT_GROWTH = 0.25


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# --- one scenario, in a child process ---------------------------------------------------------


def scenario(name: str, folder: Path, url: str, chunk: int) -> dict[str, Any]:
    """Set everything up, then embed the folder while sampling memory; vectors go into a
    compact float32 array, as they would stream into an external vector store."""
    sink = array("f")
    detail: dict[str, Any] = {}
    marks: list[tuple[int, int]] = []  # (images embedded, peak RSS so far) after each chunk
    samplers: list[PeakRss] = []

    def mark() -> None:
        marks.append((len(sink) // 768, samplers[0].peak))

    work: Callable[[], None]
    if name == "langchain":
        from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings

        embeddings = TongyiVisionEmbeddings(api_key=API_KEY, base_url=url, model=MODEL)
        embeddings.embed_documents(["warm up"])

        def work() -> None:
            for group in chunks(TongyiImageLoader(folder).lazy_load(), chunk):
                for vector in embeddings.embed_documents([d.page_content for d in group]):
                    sink.extend(vector)
                mark()

    elif name == "llama_index":
        from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding

        embedding = TongyiVisionEmbedding(api_key=API_KEY, base_url=url, model=MODEL)
        embedding.get_text_embedding("warm up")

        def work() -> None:
            reader = TongyiImageReader()
            for group in chunks(reader.lazy_load_data(folder), chunk):
                paths = [d.metadata["file_path"] for d in group]
                for vector in embedding.get_image_embedding_batch(paths):
                    sink.extend(vector)
                mark()

    elif name == "naive":
        from llama_index.core import SimpleDirectoryReader

        from tongyi_vision.llama_index import TongyiVisionEmbedding

        embedding = TongyiVisionEmbedding(api_key=API_KEY, base_url=url, model=MODEL)
        embedding.get_text_embedding("warm up")

        def work() -> None:
            documents = SimpleDirectoryReader(str(folder)).load_data()
            first = documents[0]
            detail["documents"] = f"{type(first).__name__}" + (
                f", text of {len(first.text):,} chars" if first.text else ", no text"
            )
            paths = [d.metadata["file_path"] for d in documents]
            for vector in embedding.get_image_embedding_batch(paths):
                sink.extend(vector)

    else:
        raise SystemExit(f"unknown scenario {name!r}")
    baseline = current_rss()
    started = time.perf_counter()
    with PeakRss() as sampler:
        samplers.append(sampler)
        work()
    wall = time.perf_counter() - started
    total = len(sink) // 768
    # The peak so far once a quarter, a half, three quarters of the folder were embedded.
    quarters = [
        next((peak for done, peak in marks if done * 4 >= total * q), None) for q in (1, 2, 3)
    ]
    return {
        "baseline": baseline,
        "peak": max(sampler.peak, max_rss()),
        "quarters": quarters if marks else [],
        "wall": wall,
        "vectors": total,
        **detail,
    }


# --- the parent: folders, emulator, one child per scenario and size ---------------------------


def make_folder(folder: Path, count: int) -> int:
    """``count`` distinct ~1 MB images, PNG and JPEG alternating; returns their total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        data, suffix = one_mb_image(i)
        (folder / f"image-{i:04d}{suffix}").write_bytes(data)
        total += len(data)
    return total


def link_first(source: Path, target: Path, count: int) -> None:
    """A smaller folder holding hard links to the first ``count`` files of ``source``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir())[:count]:
        os.link(path, target / path.name)


def run_child(name: str, folder: Path, url: str, chunk: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--scenario", name, "--folder", str(folder)]
    done = subprocess.run(
        [*command, "--url", url, "--chunk", str(chunk)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run(quick: bool) -> Result:
    sizes = (8, 24) if quick else (250, 1000)
    chunk = 8 if quick else CHUNK
    root = Path(tempfile.mkdtemp(prefix="tongyi-bench-memory-"))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        large = root / f"images-{sizes[1]}"
        total = make_folder(large, sizes[1])
        small = root / f"images-{sizes[0]}"
        link_first(large, small, sizes[0])
        folders = {sizes[0]: small, sizes[1]: large}
        with Emulator() as emulator:
            for name in SCENARIOS:
                for size in sizes:
                    results[name, size] = run_child(name, folders[size], emulator.base_url, chunk)
                    print(f"  {name} x {size}: {results[name, size]}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    average = total / sizes[1]
    rows = []
    targets = []
    for name, template in SCENARIOS.items():
        description = template.format(chunk=chunk)
        deltas = {}
        for size in sizes:
            r = results[name, size]
            if "error" in r:
                rows.append([description, size, "-", "-", "-", "-", "-", f"failed: {r['error']}"])
                continue
            deltas[size] = r["peak"] - r["baseline"]
            quarters = [q for q in r.get("quarters", []) if q is not None]
            progress = (
                " / ".join(f"{mib(q - r['baseline']):.0f}" for q in quarters)
                + f" / {mib(deltas[size]):.0f}"
                if len(quarters) == 3
                else "-"
            )
            rows.append(
                [
                    description,
                    size,
                    mib(r["baseline"]),
                    mib(r["peak"]),
                    mib(deltas[size]),
                    progress,
                    r["wall"],
                    r.get("documents", "-"),
                ]
            )
        if len(deltas) == 2:
            growth = deltas[sizes[1]] / deltas[sizes[0]] - 1
            added = (sizes[1] - sizes[0]) * average
            flat = growth <= FLAT_GROWTH
            verdict = (
                f"peak above the RSS before: {mib(deltas[sizes[0]]):,.0f} MiB for {sizes[0]:,} "
                f"images, {mib(deltas[sizes[1]]):,.0f} MiB for {sizes[1]:,} ({growth:+.0%}, "
                f"while the folder grows by {mib(added):,.0f} MiB)"
            )
            if name == "naive":
                rows_note = "(for comparison, no target)"
                targets.append(Target(f"{description} {rows_note}", None, verdict))
            elif quick:
                verdict += "; a quick run's folders are too small to judge"
                targets.append(Target(f"{description}: flat in the folder size", None, verdict))
            else:
                targets.append(Target(f"{description}: flat in the folder size", flat, verdict))
    table = Table(
        [
            "scenario",
            "images",
            "RSS before, MiB",
            "peak RSS, MiB",
            "peak - before, MiB",
            "peak - before after 1/4, 1/2, 3/4, all of the folder",
            "wall s",
            "documents held",
        ],
        rows,
    )
    setup = [
        f"{sizes[1]:,} distinct images of {average / 1e6:.2f} MB on average (incompressible PNG "
        f"and JPEG, alternating) in a temporary folder; the {sizes[0]:,}-image folder holds the "
        "first of them",
        "emulator: separate process, no latency, no limits; every scenario in a fresh process: "
        "imports and clients set up first (RSS before), then the folder embedded with a thread "
        "sampling RSS every 5 ms (peak = the larger of that and ru_maxrss)",
        "vectors go into a float32 array (3 KiB each), as into an external vector store",
        f"flat = {sizes[1] // sizes[0]}x the images raise the peak above the RSS before by at "
        f"most {FLAT_GROWTH:.0%} (holding the images would raise it about "
        f"{sizes[1] // sizes[0]}-fold)",
    ]
    return Result("memory", "Memory", setup, [table], targets)


def child_main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    args = parser.parse_args(argv)
    print(json.dumps(scenario(args.scenario, args.folder, args.url, args.chunk)))
    return 0


if __name__ == "__main__":
    if "--scenario" in sys.argv:
        sys.exit(child_main(sys.argv[1:]))
    sys.exit(main(run))
