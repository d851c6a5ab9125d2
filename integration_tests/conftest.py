"""Fixtures that run the emulator as a real server process on 127.0.0.1.

- ``emulator`` (session): one emulator for the whole run, ``--api-key test-key``,
  with ``http://media.test/`` mapped to a folder of test images
  (``emulator.media_dir``, ``emulator.media_url``).
- ``start_emulator`` (function): ``start_emulator("--fail-rate", "0.1", ...)``
  starts another emulator with extra flags, stopped when the test ends.
- ``client_factory``: a :class:`tongyi_vision.Client` wired to an emulator, closed afterwards.
- ``make_image``: deterministic JPEG/PNG/BMP bytes for a seed.

Every emulator is stopped at teardown (SIGTERM, then SIGKILL) even when tests fail.
"""

from __future__ import annotations

import io
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tongyi_vision import Client

API_KEY = "test-key"
MEDIA_URL = "http://media.test/"
_START_TIMEOUT = 30.0


@dataclass
class RunningEmulator:
    """An emulator process: where it listens, the key it accepts, and its media folder."""

    base_url: str
    api_key: str
    process: subprocess.Popen[str] = field(repr=False)
    log_path: Path = field(repr=False)
    media_dir: Path | None = None
    media_url: str = MEDIA_URL
    args: tuple[str, ...] = ()

    def stats(self) -> dict[str, int]:
        """The emulator's counters (``GET /stats``): requests, billed parts and tokens, faults."""
        # /stats asks for the key when the emulator has one; without one any key passes.
        headers = {"Authorization": f"Bearer {self.api_key or 'any'}"}
        response = httpx.get(self.base_url + "/stats", headers=headers, timeout=10)
        response.raise_for_status()
        data: dict[str, int] = response.json()
        return data

    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def _read_line(stream: Any, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def launch_emulator(
    args: tuple[str, ...], workdir: Path, *, api_key: str = API_KEY, media_dir: Path | None = None
) -> RunningEmulator:
    """Start ``python -m tongyi_vision.emulator`` and wait until ``/healthz`` answers."""
    command = [sys.executable, "-m", "tongyi_vision.emulator", "--port", "0"]
    if api_key:
        command += ["--api-key", api_key]
    if media_dir is not None:
        command += ["--media-root", f"{MEDIA_URL}={media_dir}"]
    command += list(args)
    log_path = workdir / f"emulator-{len(list(workdir.glob('emulator-*.log')))}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=workdir
        )
    running = RunningEmulator("", api_key, process, log_path, media_dir, MEDIA_URL, args)
    try:
        first = _read_line(process.stdout, _START_TIMEOUT).strip()
        if not first.startswith("http://"):
            raise RuntimeError(
                f"emulator did not print its URL (exit {process.poll()}): {first!r}\n"
                + running.log()
            )
        running.base_url = first
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                if httpx.get(first + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("emulator did not answer /healthz\n" + running.log())
            time.sleep(0.05)
    except BaseException:
        running.stop()
        raise
    return running


def _image(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A smooth random picture: a coarse grid of random colours, scaled up."""
    from PIL import Image as PILImage

    rng = random.Random(seed)
    grid = PILImage.new("RGB", (8, 6))
    grid.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48)])
    picture = grid.resize(size, PILImage.Resampling.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def make_image() -> Callable[..., bytes]:
    """``make_image(seed, size=(320, 240), fmt="JPEG")``: the same bytes for the same arguments."""
    return _image


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    """One emulator process for the session (key ``test-key``; ``http://media.test/`` served
    from ``media_dir``, which holds ``red.jpg``, ``blue.png``, ``gray.bmp``, ``anim.gif``)."""
    workdir = tmp_path_factory.mktemp("emulator")
    media = workdir / "media"
    media.mkdir()
    (media / "red.jpg").write_bytes(_image(1))
    (media / "blue.png").write_bytes(_image(2, fmt="PNG"))
    (media / "gray.bmp").write_bytes(_image(3, (64, 48), fmt="BMP"))
    (media / "anim.gif").write_bytes(_image(4, fmt="GIF"))
    running = launch_emulator((), workdir, media_dir=media)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def start_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningEmulator]]:
    """Start an emulator with extra flags: ``start_emulator("--rpm", "60")``; stopped at teardown.

    Keyword arguments: ``api_key`` (default ``test-key``; empty for any key) and
    ``media_dir`` (served under ``http://media.test/``).
    """
    started: list[RunningEmulator] = []

    def start(*args: str, api_key: str = API_KEY, media_dir: Path | None = None) -> RunningEmulator:
        workdir = tmp_path_factory.mktemp("emulator")
        running = launch_emulator(tuple(args), workdir, api_key=api_key, media_dir=media_dir)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def client_factory(emulator: RunningEmulator) -> Iterator[Callable[..., Client]]:
    """``client_factory(dialect="openai", server=None, **client_options)``: a Client on an
    emulator (the session one by default), closed at teardown."""
    clients: list[Client] = []

    def make(
        dialect: str = "openai", server: RunningEmulator | None = None, **options: Any
    ) -> Client:
        target = server or emulator
        options.setdefault("api_key", target.api_key)
        client = Client(base_url=target.base_url, dialect=dialect, **options)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Keep real keys and URLs from the environment out of emulator tests (not live ones)."""
    if request.node.get_closest_marker("live") is not None:
        return
    for name in (
        "EMPIRIOLABS_API_KEY",
        "DASHSCOPE_API_KEY",
        "TONGYI_VISION_BASE_URL",
        "TONGYI_VISION_MODEL",
        "TONGYI_VISION_DIALECT",
        # launch_emulator's processes inherit the environment: --api-key must be what decides.
        "TONGYI_VISION_EMULATOR_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
