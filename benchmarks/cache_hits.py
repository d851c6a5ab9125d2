"""What a cache hit costs: a fully cached call over 1,000 images against the time it takes
only to read and hash the same files, and LangChain's CacheBackedEmbeddings beside it.

    python benchmarks/cache_hits.py            # print the section
    python benchmarks/cache_hits.py --write    # and rewrite it in docs/benchmarks.md

Each timed pass runs in a fresh process (nothing remembered in memory, the files in the
page cache as a re-run would find them), against the emulator as a separate process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import API_KEY, Emulator, Table, in_fresh_process, markdown_table, write_section

SECTION = "cache-hits"
SIZES = {"small JPEG (320x240)": (320, 240), "photo JPEG (1024x768)": (1024, 768)}


def make_images(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        noise = PILImage.effect_noise(size, 40 + i % 20).convert("RGB")
        noise.save(path, quality=90)
        paths.append(path)
    return paths


def measure(mode: str, folder: str, cache: str, url: str) -> dict[str, float]:
    """One pass, in this (fresh) process."""
    import hashlib

    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore

    from tongyi_vision import Client, Image, file_uri
    from tongyi_vision.langchain import TongyiVisionEmbeddings

    paths = sorted(Path(folder).iterdir())  # imports done: only the work is timed
    started = time.perf_counter()
    if mode == "hash":
        for path in paths:
            hashlib.sha256(path.read_bytes()).hexdigest()
        return {"seconds": time.perf_counter() - started, "requests": 0}
    if mode in ("miss", "hit"):
        with Client(API_KEY, base_url=url, cache=cache, max_concurrency=16) as client:
            result = client.embed([Image(p) for p in paths])
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "requests": result.usage.requests,
            "cached": result.usage.cached,
        }
    # LangChain's CacheBackedEmbeddings over the documents' text (the file:// URI)
    embeddings = TongyiVisionEmbeddings(api_key=API_KEY, base_url=url, max_concurrency=16)
    cached = CacheBackedEmbeddings.from_bytes_store(
        embeddings, LocalFileStore(cache), namespace="bench", key_encoder="sha256"
    )
    cached.embed_documents([file_uri(p) for p in paths])
    return {"seconds": time.perf_counter() - started, "requests": embeddings.usage.requests}


def run_pass(mode: str, folder: Path, cache: Path, url: str) -> dict[str, float]:
    return in_fresh_process(__file__, mode, str(folder), str(cache), url)


def report(count: int) -> str:
    rows = []
    with Emulator() as server, tempfile.TemporaryDirectory(prefix="tongyi-cache-") as scratch:
        root = Path(scratch)
        for label, size in SIZES.items():
            folder = root / label.split()[0]
            paths = make_images(folder, count, size)
            megabytes = sum(p.stat().st_size for p in paths) / 1e6
            cache = root / f"{label.split()[0]}.sqlite"
            miss = run_pass("miss", folder, cache, server.base_url)
            hashing = min(
                run_pass("hash", folder, cache, server.base_url)["seconds"] for _ in range(3)
            )
            hits = [run_pass("hit", folder, cache, server.base_url) for _ in range(3)]
            hit = min(hits, key=lambda h: h["seconds"])
            store = root / f"{label.split()[0]}-lc"
            run_pass("langchain", folder, store, server.base_url)
            langchain = min(
                (run_pass("langchain", folder, store, server.base_url) for _ in range(3)),
                key=lambda h: h["seconds"],
            )
            overhead_us = (hit["seconds"] - hashing) / count * 1e6
            rows.append(
                [
                    label,
                    count,
                    megabytes,
                    miss["seconds"],
                    int(miss["requests"]),
                    hashing,
                    hit["seconds"],
                    int(hit["requests"]),
                    hit["seconds"] / hashing,
                    overhead_us,
                    langchain["seconds"],
                    int(langchain["requests"]),
                ]
            )
    columns = [
        "images",
        "count",
        "MB",
        "first call (s)",
        "requests",
        "read + sha256 only (s)",
        "cached call (s)",
        "requests",
        "cached / hashing",
        "per hit beyond hashing (us)",
        "CacheBackedEmbeddings, cached (s)",
        "requests",
    ]
    command = "python benchmarks/cache_hits.py" + ("" if count == 1000 else f" --count {count}")
    return "\n".join(
        [
            "## Cache hits",
            "",
            "```",
            command,
            "```",
            "",
            "A fully cached `Client.embed` of the images (a new process, a cache file from the "
            "first call) against the time only to read and hash the same files once, each the "
            "least of 3 runs in fresh processes. LangChain's `CacheBackedEmbeddings` over a "
            "`LocalFileStore` keys the documents' text, the `file://` URI: it reads no file, "
            "and so serves the old vector of an image redrawn in place, which ours does not.",
            "",
            markdown_table(Table(columns=columns, rows=rows)),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="images of each size")
    parser.add_argument("--quick", action="store_true", help="50 images; prints, writes nothing")
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    body = report(50 if args.quick else args.count)
    print(body)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/cache_hits.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
