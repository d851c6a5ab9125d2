"""Ray Data on one 2-core machine: photos that need re-encoding (WEBP, which the service does
not take), embedded by one process with ``Client.embed`` and by a Ray Data job of 2 actors
(``tongyi_vision.ray.embed_dataset``), in one run against the same emulator.

    python benchmarks/ray_images.py            # print the section
    python benchmarks/ray_images.py --write    # and rewrite it in docs/benchmarks.md
    python benchmarks/ray_images.py --quick    # 200 images; prints, writes nothing

The photos are generated here, deterministically: smooth textures with grain, a gradient and
a few shapes, saved as lossy WEBP, so each one costs the client a full decode and a JPEG
encode. The emulator runs as a separate process (``--latency 0.05 --max-concurrency 64``).
Each run is a fresh process: the one-process run is ``Client.embed`` of the paths; the Ray run
is a driver that starts a local Ray (``ray.init``, timed on its own), leaves it idle a few
seconds (to see what Ray's own processes cost doing nothing), then runs the job and takes
every row. CPU is the process tree's (the driver, Ray's daemons, its workers and actors),
sampled with psutil; the emulator's and the whole machine's are counted beside it, since
other programs share the cores. Every vector is checked: the count, the size, and the Ray
job's equal, file by file, to the one-process run's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import API_KEY, Emulator, Table, machine, markdown_table, write_section

SECTION = "ray-images"
HEADING = "Ray Data on one machine"
LATENCY = 0.05
EMULATOR_CONCURRENCY = 64
CLIENT_CONCURRENCY = 8  # the client's default, per process and per actor
ACTORS = 2
COUNT, QUICK_COUNT = 600, 200
# Each way is run twice, in the order one, Ray, Ray, one, and the faster run of each is kept:
# other programs on a shared machine only ever slow a run down.
REPEATS = 2
SIZE = (1280, 960)
IDLE_SECONDS = 3.0
SAMPLE_EVERY = 0.2
CALIBRATION_IMAGES = 16
# Rows per actor call. The default (256) would cut 1,000 rows into 4 batches: an actor that
# starts a little late may get none, and the last round leaves one actor idle.
BATCH_SIZE = 64


# --- the photos -------------------------------------------------------------------------------


def _canvases(width: int, height: int) -> dict[str, Any]:
    """Textures twice the picture's size, made once per generating process: each photo is
    cut from them at its own offsets. Seeded, so every run makes the same files."""
    import random

    from PIL import Image as PILImage

    rng = random.Random(20260301)
    big = (width * 2, height * 2)

    def layer(scale: int) -> Any:
        small = (max(2, big[0] // scale), max(2, big[1] // scale))
        noise = PILImage.frombytes("L", small, rng.randbytes(small[0] * small[1]))
        return noise.resize(big, PILImage.Resampling.BICUBIC)

    clouds = PILImage.blend(PILImage.blend(layer(64), layer(16), 0.4), layer(4), 0.25)
    grain = PILImage.frombytes("L", big, rng.randbytes(big[0] * big[1])).point(lambda v: v // 8)
    gradient = PILImage.linear_gradient("L").resize(big, PILImage.Resampling.BILINEAR)
    return {"clouds": clouds, "grain": grain, "gradient": gradient}


_CANVASES: dict[tuple[int, int], dict[str, Any]] = {}


def make_photo(index: int, width: int, height: int) -> bytes:
    """Photo ``index``: a lossy WEBP of ``width`` x ``height``, unlike every other index."""
    import io
    import random

    from PIL import Image as PILImage
    from PIL import ImageChops, ImageDraw

    if (width, height) not in _CANVASES:
        _CANVASES[(width, height)] = _canvases(width, height)
    canvases = _CANVASES[(width, height)]
    x, y = (index * 7919) % width, (index * 104_729) % height

    def cut(name: str, dx: int = 0, dy: int = 0) -> Any:
        left, top = (x + dx) % width, (y + dy) % height
        return canvases[name].crop((left, top, left + width, top + height))

    clouds, grain = cut("clouds"), cut("grain", index * 13, index * 29)
    light = cut("gradient", index * 3, index * 5)
    textured = ImageChops.add(clouds, grain, scale=1.0, offset=-16)  # a film grain of +-16
    tint = (index * 37) % 256
    photo = PILImage.merge(
        "RGB",
        (
            ImageChops.multiply(textured, light.point(lambda v: min(255, v + tint // 2))),
            ImageChops.blend(textured, light, 0.5),
            ImageChops.screen(textured, light.point(lambda v: (v + tint) % 256)),
        ),
    )
    draw = ImageDraw.Draw(photo)
    shapes = random.Random(index)
    for k in range(8):
        cx, cy = shapes.randrange(width), shapes.randrange(height)
        side = width // 20 + shapes.randrange(width // 6)
        colour = (shapes.randrange(256), shapes.randrange(256), shapes.randrange(256))
        if k % 2:
            draw.ellipse((cx, cy, cx + side, cy + side * 2 // 3), fill=colour)
        else:
            draw.rectangle((cx, cy, cx + side // 3, cy + side), fill=colour)
    buffer = io.BytesIO()
    photo.save(buffer, "WEBP", quality=82, method=0)
    return buffer.getvalue()


def _write_photos(folder: str, first: int, last: int, width: int, height: int) -> None:
    for index in range(first, last):
        (Path(folder) / f"photo-{index:05d}.webp").write_bytes(make_photo(index, width, height))


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` photos in ``folder``, generated by one process per core."""
    folder.mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 1
    step = -(-count // workers)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_write_photos, str(folder), start, min(count, start + step), *size)
            for start in range(0, count, step)
        ]
        for future in futures:
            future.result()
    return sorted(folder.iterdir())


# --- measured in fresh processes ------------------------------------------------------------


def vector_digest(vector: Any) -> str:
    """A vector's float32 bytes, hashed: equal for equal vectors, whichever path they took."""
    import numpy as np

    return hashlib.sha256(np.asarray(vector, dtype=np.float32).tobytes()).hexdigest()[:16]


def _per_image(paths: list[Path]) -> dict[str, float]:
    """The client's check and load of each image, on this thread: mean CPU seconds, and the
    mean size of what is sent."""
    from tongyi_vision import Image

    checks, loads, sent = [], [], []
    for path in paths:
        part = Image(path).prepare(defer_checks=True)
        started = time.thread_time()
        part.check()
        checked = time.thread_time()
        content = part.load()
        loads.append(time.thread_time() - checked)
        checks.append(checked - started)
        sent.append(len(str(content["image"])) * 3 / 4)  # the image, from its base64 length
    return {
        "check": sum(checks) / len(checks),
        "load": sum(loads) / len(loads),
        "sent_bytes": sum(sent) / len(sent),
    }


def calibrate(folder: str, url: str) -> dict[str, Any]:
    """For a few of the photos, on one thread: what the client's check (a full decode of a
    WEBP) and load (decode, JPEG encode, base64) cost; and the same photos saved as JPEG
    (which the client sends as they are) for comparison, with how many go in a request."""
    from PIL import Image as PILImage

    from tongyi_vision import Client, Image

    paths = sorted(Path(folder).iterdir())
    sample = paths[:: max(1, len(paths) // CALIBRATION_IMAGES)][:CALIBRATION_IMAGES]
    webp = _per_image(sample)
    # the best of 3: other programs on the machine only ever slow a run down
    threads = {
        n: min((_loads_on_threads(sample, n) for _ in range(3)), key=lambda t: t["wall"])
        for n in (1, 2)
    }
    with tempfile.TemporaryDirectory(prefix="tongyi-ray-jpeg-") as scratch:
        jpegs = []
        for path in sample:
            saved = Path(scratch) / f"{path.stem}.jpg"
            with PILImage.open(path) as picture:
                picture.convert("RGB").save(saved, quality=90)
            jpegs.append(saved)
        jpeg = _per_image(jpegs)
        with Client(API_KEY, base_url=url) as client:
            client.embed(["warm-up: the connection, the first request"])
            cpu = time.process_time()
            packed = client.embed([Image(p) for p in jpegs]).usage.requests
            cpu = time.process_time() - cpu
    return {
        "images": len(sample),
        "check": webp["check"],
        "load": webp["load"],
        "jpeg_bytes": webp["sent_bytes"],
        "as_jpeg": {**jpeg, "per_request": len(jpegs) / packed, "embed": cpu / len(jpegs)},
        "threads": threads,
        "video_minute": video_minute(),
    }


def video_minute() -> dict[str, float] | None:
    """A minute of 720p video (the generator of ``benchmarks/video_decode.py``) cut in clips of
    10 s, each checked and loaded as an embed call does (frames decoded, sampled, encoded):
    CPU and wall seconds for the minute, the best of 3. None without the ``video`` extra."""
    try:
        import av  # noqa: F401
        import numpy  # noqa: F401
        from video_decode import write_video
    except ImportError:
        return None

    from tongyi_vision import iter_clips

    with tempfile.TemporaryDirectory(prefix="tongyi-ray-video-") as scratch:
        path = Path(scratch) / "minute.mp4"
        write_video(path, 60.0)
        best: dict[str, float] | None = None
        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            clips = list(iter_clips(path, clip_seconds=10))
            for clip in clips:
                part = clip.part().prepare(defer_checks=True)
                part.check()
                part.load()
            run = {
                "cpu": time.process_time() - cpu,
                "wall": time.perf_counter() - wall,
                "clips": float(len(clips)),
                "frames": float(sum(clip.frames for clip in clips)),
            }
            if best is None or run["cpu"] < best["cpu"]:
                best = run
        return best


def _loads_on_threads(paths: list[Path], threads: int) -> dict[str, float]:
    """Check and load every image on ``threads`` threads: wall and CPU seconds. Two threads
    that take half the wall of one at the same CPU ran side by side: Pillow let go of the
    GIL."""
    from concurrent.futures import ThreadPoolExecutor

    from tongyi_vision import Image

    parts = [Image(path).prepare(defer_checks=True) for path in paths]

    def work(part: Any) -> None:
        part.check()
        part.load()

    cpu = time.process_time()
    with machine_cpu() as whole, ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, parts))
    return {**whole, "cpu": time.process_time() - cpu}


def one_process(folder: str, url: str) -> dict[str, Any]:
    """``Client.embed`` of every path, in this process; what it took and what came back."""
    from tongyi_vision import Client, Image, ProgressEvent

    paths = sorted(Path(folder).iterdir())
    first_done: list[float] = []  # when the first request came back, and the CPU until then
    started = time.perf_counter()

    def progress(event: ProgressEvent) -> None:
        if not first_done:
            first_done.extend((time.perf_counter() - started, time.process_time()))

    cpu_start = time.process_time()
    with (
        machine_cpu() as whole,
        Client(
            API_KEY, base_url=url, max_concurrency=CLIENT_CONCURRENCY, progress=progress
        ) as client,
    ):
        result = client.embed([Image(path) for path in paths])
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "cpu": cpu,
        "first_done": first_done[0] if first_done else None,
        "first_cpu": first_done[1] - cpu_start if first_done else None,
        "machine": whole,
        "threads": CLIENT_CONCURRENCY,
        "requests": result.usage.requests,
        "image_tokens": result.usage.total_tokens,  # images only: all are image tokens
        "vectors": len(result.vectors),
        "dimensions": sorted({len(v) for v in result.vectors}),
        "digests": {p.name: vector_digest(v) for p, v in zip(paths, result.vectors, strict=True)},
    }


class TreeCpu:
    """The CPU of this process and all its descendants, sampled on a thread: the last figure
    seen for each process is kept, so a process that ends mid-job still counts (less what it
    used after its last sample, at most ``SAMPLE_EVERY`` seconds' worth)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self.seen: dict[tuple[int, float], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-cpu")

    def sample(self) -> None:
        psutil = self._psutil
        for process in [self._me, *self._me.children(recursive=True)]:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
                    label = self._label(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            with self._lock:
                self.seen[key] = (label, times.user + times.system)

    def _label(self, process: Any) -> str:
        if process.pid == self._me.pid:
            return "driver"
        command = " ".join(process.cmdline()[:1]) or process.name()
        if "MapWorker" in command or "TongyiVisionEmbedder" in command:
            return "actors"
        if command.startswith("ray::"):
            return "other Ray workers"
        return "Ray's own processes"

    def snapshot(self) -> dict[tuple[int, float], tuple[str, float]]:
        self.sample()
        with self._lock:
            return dict(self.seen)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.sample()

    def __enter__(self) -> TreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def used_since(
    before: dict[tuple[int, float], tuple[str, float]],
    after: dict[tuple[int, float], tuple[str, float]],
) -> dict[str, float]:
    """CPU seconds by label between two snapshots (processes new since ``before`` from 0)."""
    used: dict[str, float] = {}
    for key, (label, seconds) in after.items():
        spent = seconds - before.get(key, (label, 0.0))[1]
        used[label] = used.get(label, 0.0) + max(0.0, spent)
    return used


def ray_job(folder: str, url: str) -> dict[str, Any]:
    """Start a local Ray, idle, run the job, take every row, stop Ray: each step's cost."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import logging

    import ray

    from tongyi_vision.ray import embed_dataset

    paths = sorted(Path(folder).iterdir())
    with TreeCpu() as tree:
        start = tree.snapshot()
        started = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            _node_ip_address="127.0.0.1",  # loopback only
        )
        init_wall = time.perf_counter() - started
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        initialised = tree.snapshot()
        time.sleep(IDLE_SECONDS)
        idle = tree.snapshot()

        started = time.perf_counter()
        with machine_cpu() as whole:
            ds = ray.data.from_items([{"path": str(path)} for path in paths])
            ds = embed_dataset(
                ds,
                column="path",
                kind="image",
                concurrency=ACTORS,
                batch_size=BATCH_SIZE,
                api_key=API_KEY,
                base_url=url,
                max_concurrency=CLIENT_CONCURRENCY,
            )
            rows = ds.take_all()
            job_wall = time.perf_counter() - started
            done = tree.snapshot()

        started = time.perf_counter()
        ray.shutdown()
        shutdown_wall = time.perf_counter() - started

    vectors = [row["vector"] for row in rows if row.get("vector") is not None]
    actor_cpu = sorted(
        (
            seconds - idle.get(key, (label, 0.0))[1]
            for key, (label, seconds) in done.items()
            if label == "actors"
        ),
        reverse=True,
    )
    return {
        "init_wall": init_wall,
        "init_cpu": used_since(start, initialised),
        "idle_seconds": IDLE_SECONDS,
        "idle_cpu": used_since(initialised, idle),
        "job_wall": job_wall,
        "job_cpu": used_since(idle, done),
        "machine": whole,
        "shutdown_wall": shutdown_wall,
        "actors": ACTORS,
        "batch_size": BATCH_SIZE,
        "actor_cpu": actor_cpu,  # each actor's CPU seconds, most first
        "rows": len(rows),
        "vectors": len(vectors),
        "dimensions": sorted({len(v) for v in vectors}),
        "digests": {Path(row["path"]).name: vector_digest(row["vector"]) for row in rows},
    }


def in_fresh_process(mode: str, folder: Path, url: str) -> dict[str, Any]:
    """``mode`` run by this script in a new interpreter; its JSON answer, and ``process``:
    the interpreter's whole wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(folder), url],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {mode} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - started
    return result


# --- the report -------------------------------------------------------------------------------


@contextmanager
def machine_cpu() -> Iterator[dict[str, float]]:
    """Busy CPU seconds of the whole machine (every program) inside the block, and wall."""
    import psutil

    measured: dict[str, float] = {}
    before, wall = psutil.cpu_times(), time.perf_counter()
    try:
        yield measured
    finally:
        after = psutil.cpu_times()
        idle = (after.idle - before.idle) + (after.iowait - before.iowait)
        total = sum(after) - sum(before)
        # guest time is counted in user time too: drop it from the sum
        total -= (after.guest - before.guest) + (after.guest_nice - before.guest_nice)
        measured["busy"] = total - idle
        measured["wall"] = time.perf_counter() - wall


def stats(url: str) -> dict[str, int]:
    import httpx

    answer = httpx.get(url + "/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    answer.raise_for_status()
    return {k: int(v) for k, v in answer.json().items()}


def counted(server: Emulator, run: Any) -> dict[str, Any]:
    """``run()`` with the emulator's counters and CPU around it (it is idle but for the
    measured part of the run)."""
    before, cpu = stats(server.base_url), server.cpu_seconds()
    result: dict[str, Any] = run()
    after = stats(server.base_url)
    result["emulator_cpu"] = server.cpu_seconds() - cpu
    result["served"] = {k: after[k] - before.get(k, 0) for k in after if k != "in_flight"}
    return result


def measure_all(count: int, size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """Make the photos, start the emulator and measure every run: the raw figures."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tongyi-ray-images-") as scratch:
        folder = Path(scratch) / "photos"
        with machine_cpu() as generating:
            paths = make_photos(folder, count, size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        with Emulator(latency=LATENCY, max_concurrency=EMULATOR_CONCURRENCY) as server:
            url = server.base_url
            calibration = in_fresh_process("calibrate", folder, url)
            order = (["one", "ray", "ray", "one"] * repeats)[: 2 * repeats]
            runs: dict[str, list[dict[str, Any]]] = {"one": [], "ray": []}
            for mode in order:
                runs[mode].append(counted(server, lambda m=mode: in_fresh_process(m, folder, url)))
    one = min(runs["one"], key=lambda run: run["wall"])
    on_ray = min(runs["ray"], key=lambda run: run["job_wall"])
    return {
        "count": count,
        "size": list(size),
        "names": [p.name for p in paths],
        "megabytes": megabytes,
        "generating": generating,
        "calibration": calibration,
        "one": one,
        "ray": on_ray,
        "walls": {
            "one": [run["wall"] for run in runs["one"]],
            "ray": [run["job_wall"] for run in runs["ray"]],
        },
        # every run: every photo's vector, and the same vectors as the first run's
        "complete": all(
            complete(run, {p.name for p in paths}, runs["one"][0])
            for run in runs["one"] + runs["ray"]
        ),
        "machine": machine(),
        "ray_version": ray_version(),
        "minutes": (time.perf_counter() - started) / 60,
    }


def complete(run: dict[str, Any], names: set[str], reference: dict[str, Any]) -> bool:
    """Whether a run gave a vector of 768 numbers for every photo, each equal to the
    reference run's for the same file (and, for Ray, one row for each photo)."""
    return (
        run["vectors"] == len(names)
        and run.get("rows", len(names)) == len(names)
        and run["dimensions"] == [768]
        and set(run["digests"]) == names
        and all(reference["digests"].get(name) == d for name, d in run["digests"].items())
    )


def report(raw: dict[str, Any], quick: bool) -> str:
    """The section of docs/benchmarks.md, from the raw figures of :func:`measure_all`."""
    info, count, size = raw["machine"], raw["count"], tuple(raw["size"])
    cores = info["cores"] or 1
    one, on_ray, cal = raw["one"], raw["ray"], raw["calibration"]
    job_cpu = sum(on_ray["job_cpu"].values())
    init_cpu = sum(on_ray["init_cpu"].values())
    idle_cpu = sum(on_ray["idle_cpu"].values())

    # Honest comparison: every image, every vector, the same vectors both ways.
    expected = set(raw["names"])
    same = sum(1 for name, d in on_ray["digests"].items() if one["digests"].get(name) == d)
    every = raw.get("complete", complete(one, expected, one) and complete(on_ray, expected, one))

    walls = raw.get("walls", {"one": [one["wall"]], "ray": [on_ray["job_wall"]]})
    runs = len(walls["one"])
    repeated = (
        f", {runs} of each way, in the order one, Ray, Ray, one; the tables give the faster "
        "run of each (the other's wall time in the first table)"
        if runs == 2
        else (f", {runs} of each way, the faster kept" if runs > 2 else "")
    )

    def other_walls(mode: str, best: float) -> str:
        rest = list(walls[mode])
        rest.remove(best)
        return ", ".join(f"{wall:.1f}" for wall in rest) or "-"

    def others(run: dict[str, Any], ours: float) -> float:
        """The share of the cores other programs kept busy while ``run`` was measured."""
        busy = float(run["machine"]["busy"]) - ours - float(run["emulator_cpu"])
        return max(0.0, busy) / float(run["machine"]["wall"]) / cores

    def row(label: str, mode: str, run: dict[str, Any], cpu: float, vectors: str) -> list[Any]:
        wall = run["wall"] if mode == "one" else run["job_wall"]
        return [
            label,
            wall,
            count / wall,
            cpu,
            cpu / count * 1000,
            f"{cpu / wall / cores:.0%}",
            run["emulator_cpu"],
            f"{others(run, cpu):.0%}",
            run["served"]["requests"],
            run["served"]["throttled"],
            vectors,
            other_walls(mode, wall),
        ]

    comparison = Table(
        [
            "run",
            "wall (s)",
            "photos/s",
            "CPU (core-s)",
            "CPU per photo (ms)",
            f"share of the {cores} cores",
            "emulator CPU (core-s)",
            "other programs' load",
            "requests",
            "429s",
            "vectors",
            "the other run (s)",
        ],
        [
            row(
                f"one process: `Client.embed`, {CLIENT_CONCURRENCY} threads",
                "one",
                one,
                one["cpu"],
                f"{one['vectors']:,} of {count:,}, 768 numbers",
            ),
            row(
                f"Ray Data: {ACTORS} actors x {CLIENT_CONCURRENCY} requests, the job",
                "ray",
                on_ray,
                job_cpu,
                f"{on_ray['vectors']:,} of {count:,}, {same:,} equal to one process's",
            ),
        ],
    )
    groups = ["driver", "actors", "other Ray workers", "Ray's own processes"]
    groups += sorted({*on_ray["job_cpu"], *on_ray["init_cpu"]} - set(groups))
    ray_costs = Table(
        ["Ray", "wall (s)", "CPU (core-s)", *[f"{g} (core-s)" for g in groups]],
        [
            [
                "`ray.init`: a local Ray of 2 CPUs",
                on_ray["init_wall"],
                init_cpu,
                *[on_ray["init_cpu"].get(g, 0.0) for g in groups],
            ],
            [
                "idle, after start-up",
                on_ray["idle_seconds"],
                idle_cpu,
                *[on_ray["idle_cpu"].get(g, 0.0) for g in groups],
            ],
            [
                "the job: actors started, every row taken",
                on_ray["job_wall"],
                job_cpu,
                *[on_ray["job_cpu"].get(g, 0.0) for g in groups],
            ],
            ["`ray.shutdown`", on_ray["shutdown_wall"], None, *[None for _ in groups]],
        ],
    )
    jpeg = cal["as_jpeg"]
    per_photo = Table(
        [
            "per photo",
            "check, one thread (ms)",
            "load, one thread (ms)",
            "a whole `embed` call (ms of CPU)",
            "sent (MB)",
            "photos per request",
        ],
        [
            [
                "these WEBPs (re-encoded as JPEG)",
                cal["check"] * 1000,
                cal["load"] * 1000,
                one["cpu"] / count * 1000,
                cal["jpeg_bytes"] / 1e6,
                one["served"]["requests"] and count / one["served"]["requests"],
            ],
            [
                "the same photos saved as JPEG (sent as they are)",
                jpeg["check"] * 1000,
                jpeg["load"] * 1000,
                jpeg["embed"] * 1000 if "embed" in jpeg else None,
                jpeg["sent_bytes"] / 1e6,
                jpeg["per_request"],
            ],
        ],
    )
    command = "python benchmarks/ray_images.py" + (" --quick" if quick else "")
    if not quick and (count, size) != (COUNT, SIZE):
        command += f" --count {count} --size {size[0]}x{size[1]}"
    tokens = one["image_tokens"] / count if one["image_tokens"] else 0

    loaded = (others(one, one["cpu"]), others(on_ray, job_cpu))
    lines = [
        f"## {HEADING}",
        "",
        "```",
        command,
        "```",
        "",
        f"- machine: {info['cpu']}, {cores} cores, {info['ram_gib']} GiB RAM; Python "
        f"{info['python']}; Ray {raw['ray_version']}; commit {info['commit']}; "
        f"{raw['minutes']:.1f} minutes in all",
        f"- {count:,} generated photos, {size[0]}x{size[1]} lossy WEBP "
        f"({raw['megabytes'] / count * 1000:.0f} KB each; {raw['generating']['wall']:.0f} s to "
        "make, not counted below). The service takes JPEG, PNG and BMP, so the client decodes "
        f"each one and sends it re-encoded as JPEG (about {cal['jpeg_bytes'] / 1e6:.1f} MB). "
        f"The emulator runs as a separate process, `--latency {LATENCY} --max-concurrency "
        f"{EMULATOR_CONCURRENCY}`, on the same cores; its CPU is counted apart.",
        f"- each run is a fresh process{repeated}. One process: `Client(max_concurrency="
        f"{CLIENT_CONCURRENCY}).embed([Image(path) for path in paths])`. Ray: "
        "`ray.init(num_cpus=2, include_dashboard=False)`, then "
        '`embed_dataset(ray.data.from_items(rows), column="path", kind="image", '
        f"concurrency={ACTORS}, batch_size={BATCH_SIZE}, max_concurrency={CLIENT_CONCURRENCY})"
        f".take_all()` (the default batch, 256 rows, would cut the job into "
        f"{-(-count // 256)} batches: an actor that starts late gets none). CPU is user + "
        "system time: the process's, or the whole tree's for Ray "
        f'(driver, daemons, workers, actors; psutil, every {SAMPLE_EVERY} s). "Other '
        "programs' load\" is the rest of the machine's busy time during the run, as a share "
        "of its cores.",
        f"- {'every vector came back' if every else '**not every vector came back**'}, in "
        f"every run: {one['vectors']:,} from one process and {on_ray['vectors']:,} from Ray "
        f"({on_ray['rows']:,} rows) for {count:,} photos, all of 768 numbers, {same:,} of "
        "Ray's equal, file by file, to one process's"
        + (f"; the emulator billed {tokens:,.0f} tokens a photo" if tokens else ""),
        "",
        markdown_table(comparison),
        "",
        f"**What a photo costs the client** ({cal['images']} of the photos in a fresh "
        "process; *check*: what the client does to every part before the first request; "
        "*load*: what it does to put the part in its request; the whole call: the one-process "
        f"run above, and an `embed` of the {cal['images']} JPEGs)",
        "",
        markdown_table(per_photo),
        "",
        *video_line(cal.get("video_minute")),
        "**What Ray itself costs**",
        "",
        markdown_table(ray_costs),
        "",
        *analyse(raw, job_cpu=job_cpu, init_cpu=init_cpu, idle_cpu=idle_cpu, loaded=loaded),
    ]
    return "\n".join(lines)


def video_line(minute: dict[str, float] | None) -> list[str]:
    """What a minute of video costs the client, for docs/scaling.md's video example."""
    if not minute:
        return []
    clips = int(minute["clips"])
    return [
        f"A minute of 720p video for comparison (H.264, the generator of "
        f"`benchmarks/video_decode.py`), cut in {clips} clips of 10 s, "
        f"{minute['frames'] / clips:.0f} frames each: checking and loading its clips (decoding, "
        f"sampling and encoding the frames) took {minute['cpu']:.2f} core-s and "
        f"{minute['wall']:.2f} s of wall (FFmpeg decodes on 2 threads), "
        f"{minute['cpu'] / clips:.2f} core-s a clip.",
        "",
    ]


def analyse(
    raw: dict[str, Any],
    *,
    job_cpu: float,
    init_cpu: float,
    idle_cpu: float,
    loaded: tuple[float, float],
) -> list[str]:
    """The reading of the figures, in prose computed from them."""
    one, on_ray, cal = raw["one"], raw["ray"], raw["calibration"]
    count, cores = raw["count"], raw["machine"]["cores"] or 1
    speedup = one["wall"] / on_ray["job_wall"]
    with_start = one["wall"] / (on_ray["job_wall"] + on_ray["init_wall"])
    one_share = one["cpu"] / one["wall"] / cores
    ray_share = job_cpu / on_ray["job_wall"] / cores
    actors = on_ray["job_cpu"].get("actors", 0.0)
    overhead = job_cpu - actors
    worked = [seconds for seconds in on_ray["actor_cpu"] if seconds > 1.0]
    ray_ms, one_ms = job_cpu / count * 1000, one["cpu"] / count * 1000
    actor_ms = actors / count * 1000
    threads = cal["threads"]

    def busy(run: dict[str, Any]) -> float:
        return float(run["machine"]["busy"] / run["machine"]["wall"] / cores)

    two_threads = threads["1"]["wall"] / threads["2"]["wall"]
    probe_others = max(
        (t["busy"] - t["cpu"]) / t["wall"] for t in threads.values() if t["wall"] > 0
    )
    low, high = sorted((count / one["wall"], count / on_ray["job_wall"]))
    rates = f"{low:.0f} to {high:.0f}" if round(low) != round(high) else f"about {low:.0f}"
    if speedup > 1.05:
        verdict = f"Ray did the job {speedup:.2f}x as fast as one process"
    elif speedup < 0.95:
        verdict = f"One process did the job {1 / speedup:.2f}x as fast as Ray"
    else:
        verdict = "Ray and one process took about as long"
    out = [
        "**Reading the figures**",
        "",
        f"- {verdict} (Ray {on_ray['job_wall']:.0f} s, one process {one['wall']:.0f} s; Ray "
        f"{with_start:.2f}x as fast counting `ray.init`'s {on_ray['init_wall']:.1f} s)"
        + (
            f", but other programs took {loaded[1]:.0%} of the cores during the Ray run against "
            f"{loaded[0]:.0%} during the one-process run, which this comparison does not undo"
            if abs(loaded[1] - loaded[0]) > 0.08
            else ""
        )
        + ". The time is the "
        f"client's CPU, not the network: at {LATENCY * 1000:.0f} ms a request, "
        f"{CLIENT_CONCURRENCY} requests in flight could carry "
        f"{CLIENT_CONCURRENCY / LATENCY:,.0f} photos a second, and the CPU gives "
        f"{rates}. A re-encoded photo "
        "goes one to a request: until it is encoded the planner reserves it the 3 MB "
        f"maximum, and two do not fit the 8 MB body (the same photos as JPEG go "
        f"{cal['as_jpeg']['per_request']:.0f} to a request, and cost the client "
        f"{(cal['as_jpeg']['check'] + cal['as_jpeg']['load']) * 1000:.0f} ms each instead of "
        f"{(cal['check'] + cal['load']) * 1000:.0f}).",
    ]
    first_cores = later_cores = 0.0
    if one["first_done"] is not None and one["first_cpu"] is not None:
        first, first_cpu = one["first_done"], one["first_cpu"]
        later = one["wall"] - first
        later_cores = (one["cpu"] - first_cpu) / later if later > 0 else 0.0
        first_cores = first_cpu / first if first > 0 else 0.0
        out.append(
            f"- One process kept {one_share:.0%} of the cores busy, in two phases. First the "
            "call checks every part on the calling thread alone (for a WEBP, a full decode, so "
            "that a corrupt file is refused before anything is sent): the first answer came "
            f"{first:.0f} s into the {one['wall']:.0f} s call, at {first_cores:.2f} cores. "
            f"Then its {CLIENT_CONCURRENCY} threads load and send: {later:.0f} s at "
            f"{later_cores:.2f} cores. Pillow lets go of the GIL while it decodes and encodes, "
            "but not for everything: 2 threads checking and loading "
            f"{cal['images']} photos went {two_threads:.2f}x as fast as one (2x would be "
            "perfect"
            + (
                "; other programs were busy meanwhile, so the figure is a low one"
                if probe_others > 0.2
                else ""
            )
            + "), so one interpreter does not fill 2 cores even then."
        )
    out += [
        f"- The Ray job kept {ray_share:.0%} of the cores busy: each actor is an interpreter "
        f"of its own, and with {BATCH_SIZE}-row batches one actor checks while the other loads. "
        f"{len(worked)} of its {ACTORS} actors had work ("
        + ", ".join(f"{seconds:.0f}" for seconds in worked)
        + " core-s). With the emulator and the other programs, the machine was "
        f"{busy(on_ray):.0%} busy during the Ray job and {busy(one):.0%} during the one-process "
        f"call. Idle, Ray used {idle_cpu / on_ray['idle_seconds']:.2f} of a core; starting it, "
        f"{init_cpu:.1f} core-s.",
        f"- But a photo cost more CPU on Ray: {ray_ms:.0f} ms against {one_ms:.0f} ms in one "
        f"process. The driver, Ray's daemons and its other workers account for "
        f"{overhead / count * 1000:.0f} ms of it ({overhead / job_cpu:.0%} of the job's CPU); "
        f"the actors used {actor_ms:.0f} ms a photo, "
        + (
            f"{actor_ms / one_ms - 1:.0%} more than the single process for the same work, "
            "which this benchmark does not trace further."
            if actor_ms > one_ms * 1.05
            else "about what the single process used."
        ),
    ]
    if speedup > 1.05:
        out.append(
            f"- So on {cores} cores Ray wins by keeping more of them busy, though each photo "
            "costs more CPU: it spends what one process leaves idle (the serial checks, the "
            "GIL)."
        )
    elif speedup < 0.95:
        out.append(
            f"- So on {cores} cores one process was faster: the CPU Ray adds to each photo "
            "outweighed the cores it kept busy."
        )
    else:
        out.append(
            f"- So on {cores} cores the two come out level: Ray keeps more of them busy and "
            "spends about as much more CPU on each photo."
        )
    if one["first_done"] is not None and one["first_cpu"] is not None:
        out.append(
            f"- One process stays near one core ({first_cores:.1f} while it checks, "
            f"{later_cores:.1f} after), however many the machine has: its checks run on one "
            "thread, and the GIL holds part of the rest. On bigger machines and across "
            "machines, actors, one per core, are what grows with the cores (`concurrency=`; "
            "the CLI's `--ray` starts one per CPU)."
        )
    out.append(
        "- [Scaling out](scaling.md) takes these figures to N machines and to the account's "
        "rate limit."
    )
    if max(loaded) > 0.05:
        out.append(
            f"- Other programs kept up to {max(loaded):.0%} of this machine's cores busy during "
            'the runs (the "other programs\' load" column): the wall times are longer than an '
            "idle machine's, the more so for the run with the larger share."
        )
    return out


def ray_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return "not installed"


def size_of(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=COUNT, help="photos (default %(default)s)")
    parser.add_argument("--size", type=size_of, default=SIZE, help="WIDTHxHEIGHT (1280x960)")
    parser.add_argument("--quick", action="store_true", help="200 photos; prints, writes nothing")
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this path")
    parser.add_argument("--from-json", type=Path, help="report the raw figures of an earlier run")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, folder, url = args.measure
        run = {"calibrate": calibrate, "one": one_process, "ray": ray_job}[mode]
        print(json.dumps(run(folder, url)))
        return 0
    if args.from_json:
        raw = json.loads(args.from_json.read_text())
    else:
        raw = measure_all(
            QUICK_COUNT if args.quick else args.count, args.size, 1 if args.quick else REPEATS
        )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    body = report(raw, args.quick)
    print(body)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/ray_images.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
