"""What every benchmark shares: the emulator process, clocks, memory sampling, generated inputs,
the machine's description and the shape of a result.

Each benchmark script is ``python benchmarks/NAME.py [--quick] [--json PATH]`` and defines
``run(quick) -> Result``; ``benchmarks/run.py`` runs them all, each in its own process, and
writes ``docs/benchmarks.md``. The emulator always runs as a separate process, so the client
being measured never shares its interpreter (or its GIL) with the server.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import queue
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
API_KEY = "benchmark-key"
MODEL = "tongyi-embedding-vision-flash"
# Limits of the wire contract (docs/limits.md) that the core packs requests by.
TEXTS_PER_REQUEST = 20
IMAGES_PER_REQUEST = 8


# --- results -------------------------------------------------------------------------------


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    title: str = ""


@dataclass
class Target:
    """A goal of issue 7 and whether this run met it."""

    goal: str
    met: bool | None  # None: could not be measured in this run
    detail: str


@dataclass
class Result:
    """One benchmark's figures: what was run, the tables, the targets, and notes in prose."""

    name: str
    title: str
    setup: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(
            name=data["name"],
            title=data["title"],
            setup=list(data.get("setup", [])),
            tables=[Table(**t) for t in data.get("tables", [])],
            targets=[Target(**t) for t in data.get("targets", [])],
            notes=list(data.get("notes", [])),
            seconds=float(data.get("seconds", 0.0)),
        )


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(escape(cell(v)) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def escape(text: str) -> str:
    """Keep a cell literal in Markdown: profiles name functions like ``<genexpr>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def text_table(table: Table) -> str:
    cells = [table.columns, *[[cell(v) for v in row] for row in table.rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def print_result(result: Result) -> None:
    print(f"\n== {result.title} ({result.seconds:.0f} s)")
    for line in result.setup:
        print(f"   {line}")
    for table in result.tables:
        if table.title:
            print(f"\n{table.title}")
        print(text_table(table))
    for target in result.targets:
        mark = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[target.met]
        print(f"[{mark}] {target.goal}: {target.detail}")
    for note in result.notes:
        print(f"note: {note}")
    sys.stdout.flush()


def main(run: Callable[[bool], Result], argv: Sequence[str] | None = None) -> int:
    """The command line every benchmark script shares."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.quick)
    result.seconds = time.perf_counter() - started
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    return 0


# --- sections of docs/benchmarks.md -----------------------------------------------------------


KEPT_BY_RUN = "benchmarks/run.py keeps it as it is"


def marked_section(name: str, owner: str, body: str, note: str = KEPT_BY_RUN) -> str:
    """``body`` between the markers of section ``name``, which say who wrote it (and
    ``note``: how it is kept up to date)."""
    return (
        f"<!-- section: {name} (written by {owner}; {note}) -->\n"
        f"{body.strip()}\n<!-- end section: {name} -->"
    )


def write_section(
    name: str, owner: str, body: str, doc: Path = DOC, note: str = KEPT_BY_RUN
) -> None:
    """Replace (or append) section ``name`` of ``doc`` with ``body``, nothing else (``doc``
    may be another page of docs/; ``note`` then says what rewrites the section)."""
    block = marked_section(name, owner, body, note)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(
        rf"<!-- section: {re.escape(name)}\b.*?-->\n.*?<!-- end section: {re.escape(name)} -->",
        re.S,
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


# --- the emulator, as a separate process ------------------------------------------------------


def emulator_command() -> list[str]:
    """``python -m tongyi_vision.emulator``, or TONGYI_VISION_BENCH_EMULATOR (a command line)
    to measure against another server that takes the same flags."""
    custom = os.environ.get("TONGYI_VISION_BENCH_EMULATOR")
    if custom:
        return shlex.split(custom)
    return [sys.executable, "-m", "tongyi_vision.emulator"]


class Emulator:
    """The emulator in its own process on a free loopback port; stopped on exit, always.

    >>> with Emulator(latency=0.1, max_concurrency=16) as emulator:
    ...     emulator.base_url
    """

    def __init__(self, **flags: Any) -> None:
        self.flags = {"port": 0, "api-key": API_KEY, "seed": 0}
        self.flags.update({name.replace("_", "-"): value for name, value in flags.items()})
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None
        # Closed in __exit__: the server writes to it for the object's whole life.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the emulator is not running")
        return self._process.pid

    def __enter__(self) -> Emulator:
        args = [*emulator_command()]
        for name, value in self.flags.items():
            if value is None or value is False:
                continue
            args.append(f"--{name}")
            if value is not True:
                args.append(str(value))
        self._process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._process.stdout
        assert stdout is not None

        def drain() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=drain, daemon=True, name="emulator-stdout").start()
        try:
            first = lines.get(timeout=30).strip()
        except queue.Empty:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the emulator printed no URL in 30 s: {self.stderr()}") from None
        self.base_url = first.split()[0].rstrip("/") if first else ""
        if not self.base_url.startswith("http://127.0.0.1"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"unexpected first line from the emulator: {first!r}")
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the emulator at {self.base_url} never became healthy")

    def cpu_seconds(self) -> float:
        """User plus system CPU the server process has used so far."""
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._stderr.close()


# --- clocks and memory -----------------------------------------------------------------------


@dataclass
class Measured:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def measure() -> Iterator[Measured]:
    """Wall time and this process's CPU time (every thread) spent inside the block."""
    measured = Measured()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield measured
    finally:
        measured.wall = time.perf_counter() - wall
        measured.cpu = time.process_time() - cpu


class PeakRss:
    """Samples this process's resident memory on a thread; ``peak`` is the largest sample."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="rss-sampler")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def max_rss() -> int:
    """The process's peak resident memory so far, in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def mib(n: float) -> float:
    return n / (1024 * 1024)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


# --- generated inputs ------------------------------------------------------------------------

_WORDS = [
    *("red", "bicycle", "harbour", "mountain", "lantern", "river", "market", "violin"),
    *("garden", "engine", "winter", "cathedral", "orchard", "copper", "meadow", "tram"),
    *("signal", "paper", "kite", "desert"),
]


def make_texts(count: int, *, tag: str = "t") -> list[str]:
    """``count`` distinct short texts of about a dozen words."""
    texts = []
    for i in range(count):
        words = [_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(10)]
        texts.append(f"{tag}{i}: a photo of a " + " ".join(words))
    return texts


def _noise(seed: int, nbytes: int) -> bytes:
    import random

    return random.Random(seed).randbytes(nbytes)


def noise_png(seed: int, side: int) -> bytes:
    """An incompressible PNG of ``side`` x ``side`` RGB pixels (about 3 * side**2 bytes)."""
    from PIL import Image

    image = Image.frombytes("RGB", (side, side), _noise(seed, side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def noise_jpeg(seed: int, side: int, quality: int = 85) -> bytes:
    """A JPEG of random pixels: about 0.76 bytes per pixel at quality 85."""
    from PIL import Image

    image = Image.frombytes("RGB", (side, side), _noise(seed, side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def small_images(count: int) -> list[bytes]:
    """``count`` distinct small images (48x48), PNG and JPEG alternating."""
    return [noise_png(i, 48) if i % 2 == 0 else noise_jpeg(i, 48) for i in range(count)]


def one_mb_image(seed: int) -> tuple[bytes, str]:
    """About 1 MB, PNG or JPEG by seed: (bytes, file suffix)."""
    if seed % 2 == 0:
        return noise_png(seed, 577), ".png"
    return noise_jpeg(seed, 1150), ".jpg"


# --- the machine -----------------------------------------------------------------------------

PACKAGES = (
    "tongyi-vision",
    "httpx",
    "pydantic",
    "openai",
    "langchain-core",
    "langchain-openai",
    "llama-index-core",
    "llama-index-embeddings-openai",
    "starlette",
    "uvicorn",
    "Pillow",
    "av",
    "psutil",
)


def in_fresh_process(script: str | Path, *args: str) -> dict[str, Any]:
    """Run ``script --measure ARGS...`` in a new interpreter and return the JSON object it
    prints last, with ``wall``: the seconds the process took, start-up and imports included."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script), "--measure", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        name = Path(script).name
        raise RuntimeError(f"measuring {args[0]} in {name} failed:\n{done.stderr[-3000:]}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["wall"] = wall
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import psutil

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit or "unknown",
    }
