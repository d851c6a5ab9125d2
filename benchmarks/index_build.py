"""What ``tongyi-vision embed`` costs beside the client it drives: the real CLI over 5,000 small
JPEGs against ``Client.embed`` of the same images, and a re-run over 10,000 unchanged files
against the time only to read and sha256 them.

    python benchmarks/index_build.py            # print the section
    python benchmarks/index_build.py --write    # and rewrite it in docs/benchmarks.md
    python benchmarks/index_build.py --quick    # 300 and 600 images; prints, writes nothing

The emulator runs as a separate process with ``--latency 0.1 --max-concurrency 16``; the CLI
and the client both send 16 requests at a time. Every pass runs in a fresh process, timed from
the outside (interpreter start included) and, for the client and the hashing, also inside
(after the imports). Requests are the emulator's own count (``GET /stats``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import API_KEY, Emulator, Table, machine, markdown_table, write_section
from _common import in_fresh_process as measured_in_fresh_process

SECTION = "index-build"
CONCURRENCY = 16
LATENCY = 0.1
SIDE = (96, 72)  # a small JPEG: about 6 KB of noise


def make_images(folder: Path, count: int, first: int = 0) -> None:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        noise = PILImage.effect_noise(SIDE, 30 + i % 40).convert("RGB")
        # A pixel of its own keeps every image distinct (the noise repeats across seeds).
        noise.putpixel((i % SIDE[0], 0), (i % 251, (i // 251) % 251, 7))
        noise.save(folder / f"IMG_{i:05d}.jpg", quality=85)


def measure(mode: str, folder: str, url: str) -> dict[str, float]:
    """One pass in this fresh process: ``client`` embeds the folder's images with
    Client.embed; ``hash`` only reads and sha256s every file."""
    from tongyi_vision import Client, Image

    paths = sorted(Path(folder).iterdir())
    started = time.perf_counter()
    if mode == "hash":
        for path in paths:
            hashlib.sha256(path.read_bytes()).hexdigest()
        return {"seconds": time.perf_counter() - started}
    with Client(API_KEY, base_url=url, max_concurrency=CONCURRENCY) as client:
        result = client.embed([Image(p) for p in paths])
    return {"seconds": time.perf_counter() - started, "vectors": len(result.vectors)}


def in_fresh_process(mode: str, folder: Path, url: str) -> dict[str, Any]:
    return measured_in_fresh_process(__file__, mode, str(folder), url)


def cli_embed(folder: Path, index: Path, url: str) -> dict[str, Any]:
    """``tongyi-vision embed FOLDER --out INDEX`` as a user runs it; its wall time."""
    command = [
        str(Path(sys.executable).with_name("tongyi-vision")),
        "embed",
        str(folder),
        "--out",
        str(index),
        "--max-concurrency",
        str(CONCURRENCY),
        "--no-progress",
    ]
    env = {
        **os.environ,
        "EMPIRIOLABS_API_KEY": API_KEY,
        "TONGYI_VISION_BASE_URL": url,
    }
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"tongyi-vision embed failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return {"wall": wall, "stdout": done.stdout}


def requests_seen(url: str) -> int:
    import httpx

    answer = httpx.get(url + "/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["requests"])


def counted(url: str, run: Any) -> tuple[Any, int]:
    before = requests_seen(url)
    result = run()
    return result, requests_seen(url) - before


def report(first_count: int, rerun_count: int, repeats: int) -> str:
    info = machine()
    started = time.perf_counter()
    with (
        Emulator(latency=LATENCY, max_concurrency=CONCURRENCY) as server,
        tempfile.TemporaryDirectory(prefix="tongyi-build-") as scratch,
    ):
        url = server.base_url
        root = Path(scratch)
        images = root / "images"
        make_images(images, first_count)
        megabytes = sum(p.stat().st_size for p in images.iterdir()) / 1e6

        # 1. The CLI and the client, alternating, each in a fresh process.
        cli_runs: list[tuple[float, int]] = []
        client_runs: list[tuple[dict[str, float], int]] = []
        for n in range(repeats):
            index = root / f"first-{n}.index"
            cli, cli_requests = counted(url, lambda index=index: cli_embed(images, index, url))
            cli_runs.append((cli["wall"], cli_requests))
            shutil.rmtree(index)
            client, client_requests = counted(url, lambda: in_fresh_process("client", images, url))
            client_runs.append((client, client_requests))
        cli_wall, cli_requests = min(cli_runs)
        client, client_requests = min(client_runs, key=lambda run: run[0]["wall"])
        ratio_process = cli_wall / client["wall"]
        ratio_call = cli_wall / client["seconds"]

        # 2. A re-run over unchanged files: no request, and about the time to hash them.
        make_images(images, rerun_count - first_count, first=first_count)
        index = root / "rerun.index"
        first, first_requests = counted(url, lambda: cli_embed(images, index, url))
        reruns = [counted(url, lambda: cli_embed(images, index, url)) for _ in range(repeats)]
        rerun_wall = min(run["wall"] for run, _ in reruns)
        rerun_requests = max(requests for _, requests in reruns)
        hashes = [in_fresh_process("hash", images, url) for _ in range(repeats)]
        hashing = min(hashes, key=lambda run: run["wall"])
        ratio_rerun = rerun_wall / hashing["wall"]
        index_mb = sum(p.stat().st_size for p in index.rglob("*") if p.is_file()) / 1e6
        rerun_mb = sum(p.stat().st_size for p in images.iterdir()) / 1e6
    minutes = (time.perf_counter() - started) / 60

    ideal = -(-first_count // 8) / CONCURRENCY * LATENCY
    first_table = Table(
        ["pass", "images", "MB", "wall (s)", "inside the process (s)", "requests"],
        [
            ["tongyi-vision embed (the CLI)", first_count, megabytes, cli_wall, None, cli_requests],
            [
                "Client.embed, a fresh process",
                first_count,
                megabytes,
                client["wall"],
                client["seconds"],
                client_requests,
            ],
        ],
    )
    rerun_table = Table(
        ["pass", "files", "MB", "wall (s)", "inside the process (s)", "requests"],
        [
            [
                "tongyi-vision embed, first run",
                rerun_count,
                rerun_mb,
                first["wall"],
                None,
                first_requests,
            ],
            [
                "tongyi-vision embed, re-run (unchanged)",
                rerun_count,
                rerun_mb,
                rerun_wall,
                None,
                rerun_requests,
            ],
            [
                "read + sha256 only, a fresh process",
                rerun_count,
                rerun_mb,
                hashing["wall"],
                hashing["seconds"],
                0,
            ],
        ],
    )
    met_first = ratio_process <= 1.15
    met_rerun = rerun_requests == 0 and ratio_rerun <= 1.3
    quick = first_count != 5000
    command = "python benchmarks/index_build.py" + (" --quick" if quick else "")
    return "\n".join(
        [
            "## Index build",
            "",
            "```",
            command,
            "```",
            "",
            f"- machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; "
            f"Python {info['python']}; commit {info['commit']}; {minutes:.1f} minutes",
            f"- the emulator as a separate process, `--latency {LATENCY} --max-concurrency "
            f"{CONCURRENCY}`; the CLI (`--max-concurrency {CONCURRENCY}`) and `Client(..., "
            f"max_concurrency={CONCURRENCY})` alike; generated {SIDE[0]}x{SIDE[1]} JPEGs; each "
            f"figure the least of {repeats} runs, each run a fresh process timed from outside "
            "(interpreter start and imports included). At 8 images a request, 16 at a time, "
            f"{first_count:,} images need at least {ideal:.1f} s of the emulator's latency.",
            "",
            "**Targets**",
            "",
            f"- the CLI within 1.15x of Client.embed: {ratio_process:.2f}x process to process "
            f"({'met' if met_first else 'MISSED'}); {ratio_call:.2f}x the client's call alone",
            f"- a re-run over {rerun_count:,} unchanged files sends 0 requests and takes at most "
            f"1.3x reading and hashing them: {rerun_requests} requests, {ratio_rerun:.2f}x "
            f"({'met' if met_rerun else 'MISSED'})",
            "",
            f"**Embedding {first_count:,} images**",
            "",
            markdown_table(first_table),
            "",
            f"**Re-running over {rerun_count:,} files** (index: {index_mb:.1f} MB on disk)",
            "",
            markdown_table(rerun_table),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts; prints, writes nothing")
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    body = report(300, 600, 1) if args.quick else report(5000, 10_000, 2)
    print(body)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/index_build.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
