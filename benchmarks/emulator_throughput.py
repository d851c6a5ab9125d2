"""Requests per second the emulator answers, measured from a separate load-generator process.

Starts ``python -m tongyi_vision.emulator`` on 127.0.0.1, then drives it from this
process with a minimal keep-alive HTTP/1.1 client over loopback (after checking
one answer with httpx), for a bounded time and number of requests per scenario:

- ``text``: openai dialect, one short text per request;
- ``images``: native dialect, eight JPEG data URIs per request (1024x768 photos
  unless ``--image-size`` says otherwise).

It prints the "Emulator throughput" section of docs/benchmarks.md: requests
per second, latency percentiles, and the server's CPU milliseconds per request
(from /proc, Linux only), which gives the emulator's own ceiling on one core
whatever the load generator manages.

    python benchmarks/emulator_throughput.py               # both scenarios, 10 s each
    python benchmarks/emulator_throughput.py --write       # ... and rewrite the doc's section
    python benchmarks/emulator_throughput.py --quick       # 2 s each: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import io
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import write_section

from tongyi_vision.wire.models import NATIVE_PATH, OPENAI_PATH

SECTION = "emulator-throughput"
KEY = "bench-key"
MODEL = "tongyi-embedding-vision-flash"
WORDS = [
    "red",
    "green",
    "blue",
    "bicycle",
    "harbour",
    "river",
    "lantern",
    "market",
    "winter",
    "orchard",
    "quiet",
    "station",
    "morning",
    "copper",
    "garden",
    "window",
    "bridge",
    "mountain",
    "letter",
    "painting",
]


@dataclass
class Outcome:
    scenario: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float | None
    body_bytes: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def _photo(seed: int, size: tuple[int, int]) -> bytes:
    """A photo-like JPEG: smooth colour fields plus grain, so it compresses like a real one."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    grid = Image.new("RGB", (12, 9))
    grid.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(108)])
    picture = grid.resize(size, Image.Resampling.BICUBIC)
    noise = Image.effect_noise(size, 24).convert("RGB")
    picture = Image.blend(picture, noise, 0.15).filter(ImageFilter.SMOOTH)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def text_bodies(count: int = 512) -> list[bytes]:
    rng = random.Random(1)
    bodies = []
    for _ in range(count):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16)))
        bodies.append(json.dumps({"model": MODEL, "input": text}).encode())
    return bodies


def image_bodies(size: tuple[int, int], count: int = 4) -> list[bytes]:
    photos = [_photo(seed, size) for seed in range(8 * count)]
    bodies = []
    for n in range(count):
        contents = [
            {"image": "data:image/jpeg;base64," + base64.b64encode(p).decode()}
            for p in photos[8 * n : 8 * n + 8]
        ]
        bodies.append(json.dumps({"model": MODEL, "input": {"contents": contents}}).encode())
    return bodies


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client over one socket: pre-built requests, status and
    body length read, nothing else. It costs the load generator a fraction of what a full
    client does, so the server, not the generator, sets the pace."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def raw_request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(
    url: str, path: str, bodies: list[bytes], concurrency: int, seconds: float, limit: int
) -> tuple[int, int, float, list[float]]:
    latencies: list[float] = []
    errors = 0
    sent = 0
    requests = [raw_request(path, body) for body in bodies]
    connections = [RawConnection(url) for _ in range(concurrency)]
    # Warm up: open the connections and let the server's caches settle.
    await asyncio.gather(*(c.post(requests[0]) for c in connections))
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(offset: int) -> None:
        nonlocal errors, sent
        connection = connections[offset]
        position = offset
        while time.perf_counter() < deadline and sent < limit:
            sent += 1
            request = requests[position % len(requests)]
            position += concurrency
            began = time.perf_counter()
            status = await connection.post(request)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                errors += 1

    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return len(latencies), errors, time.perf_counter() - start, latencies


def check_answers(url: str, path: str, body: bytes) -> None:
    """One request through httpx first: the timed requests must get real, complete answers."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(url + path, content=body, headers=headers, timeout=60)
    response.raise_for_status()
    answer = response.json()
    items = answer["data"] if "data" in answer else answer["output"]["embeddings"]
    if not items or any(len(item["embedding"]) != 768 for item in items):
        raise SystemExit(f"unexpected answer from the emulator: {response.text[:200]}")


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tongyi_vision.emulator", "--port", "0", "--api-key", KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the emulator did not start: {url!r}")
    for _ in range(200):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return process, url


def measure(args: argparse.Namespace) -> list[Outcome]:
    width, height = (int(n) for n in args.image_size.lower().split("x"))
    scenarios = {
        "text": (OPENAI_PATH, text_bodies, args.text_concurrency),
        "images": (NATIVE_PATH, lambda: image_bodies((width, height)), args.image_concurrency),
    }
    chosen = list(scenarios) if args.scenario == "all" else [args.scenario]
    process, url = start_emulator()
    outcomes = []
    try:
        for name in chosen:
            path, make, concurrency = scenarios[name]
            bodies = make()
            check_answers(url, path, bodies[0])
            cpu_before = _cpu_seconds(process.pid)
            count, errors, elapsed, latencies = asyncio.run(
                drive(url, path, bodies, concurrency, args.seconds, args.max_requests)
            )
            cpu_after = _cpu_seconds(process.pid)
            cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
            size = sum(map(len, bodies)) // len(bodies)
            outcomes.append(
                Outcome(name, concurrency, count, errors, elapsed, latencies, cpu, size)
            )
    finally:
        process.terminate()
        process.wait(10)
    return outcomes


def report(outcomes: list[Outcome], args: argparse.Namespace, command: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## Emulator throughput",
        "",
        "```",
        command,
        "```",
        "",
        f"- {now}; {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; load average at the end: {load:.1f}",
        "- the emulator runs as its own process (`python -m tongyi_vision.emulator`, one "
        "event loop); the load generator is this script's process: asyncio with a minimal "
        "keep-alive HTTP/1.1 client per connection over 127.0.0.1 (answers checked with httpx "
        f"first); {args.seconds:g} s per scenario after a warm-up, at most "
        f"{args.max_requests:,} requests",
        "- text: openai dialect, one text of 4-16 words per request; images: native dialect, "
        f"8 JPEG data URIs of {args.image_size} per request",
        "",
        "| scenario | concurrency | requests | errors | req/s | p50 ms | p99 ms "
        "| server CPU ms/req | server ceiling, 1 core | body |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.server_cpu is None or not o.requests:
            cpu = ceiling = "n/a"
        else:
            per_request = 1000 * o.server_cpu / o.requests
            cpu = f"{per_request:.2f}"
            ceiling = f"{1000 / per_request:,.0f} req/s"
        lines.append(
            f"| {o.scenario} | {o.concurrency} | {o.requests:,} | {o.errors} | {o.rps:,.0f} "
            f"| {o.percentile(0.5):.1f} | {o.percentile(0.99):.1f} | {cpu} | {ceiling} "
            f"| {o.body_bytes / 1024:,.1f} KiB |"
        )
    lines += [
        "",
        "- req/s is what one load-generator process got through with the server beside it on "
        "the same 2 cores, so it is a floor; the ceiling column is 1 / (server CPU per "
        "request): what the emulator alone would answer with a core to itself",
        "- the real service answers one request in tens to hundreds of milliseconds and "
        "rate-limits each account, so a client benchmark against the emulator measures the "
        "client, not the emulator, while its ceiling stays far above the rates tested",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenario", choices=("all", "text", "images"), default="all")
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario (default 10)")
    parser.add_argument("--max-requests", type=int, default=50_000, help="per scenario")
    parser.add_argument("--text-concurrency", type=int, default=16)
    parser.add_argument("--image-concurrency", type=int, default=4)
    parser.add_argument("--image-size", default="1024x768", help="WIDTHxHEIGHT of each image")
    parser.add_argument("--quick", action="store_true", help="2 s per scenario; writes nothing")
    parser.add_argument("--write", action="store_true", help="rewrite the doc's section")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 2.0)
    command = "python benchmarks/emulator_throughput.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    command = command.replace(" --write", "")
    body = report(measure(args), args, command)
    print(body)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/emulator_throughput.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
