"""The ``tongyi-vision`` command as a user runs it: a subprocess against a real emulator process.

The command runs as ``python -m tongyi_vision`` so that PATH does not matter. The
emulator's ``/stats`` counters say what was sent and billed, which is how these
tests check that a second run sends nothing and an interrupted one pays nothing twice.
The index the command wrote (a LanceDB table) is read back with ``IndexTable``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tongyi_vision.index import IndexTable, Row
from tongyi_vision.samples import write_sample_images, write_sample_texts

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

NOTES = 120


def command_env(server: RunningEmulator | None, **extra: str) -> dict[str, str]:
    """The environment of a command: no real key, the emulator's URL and key when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TONGYI_VISION_",))}
    env["EMPIRIOLABS_API_KEY"] = server.api_key if server is not None else ""
    env["DASHSCOPE_API_KEY"] = ""
    if server is not None:
        env["TONGYI_VISION_BASE_URL"] = server.base_url
    env.update(extra)
    return env


def tongyi_vision(
    *args: str | Path, server: RunningEmulator | None, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tongyi_vision", *map(str, args)],
        env=command_env(server, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def items(index: Path) -> list[Row]:
    """Every row of an index folder, with its vector, read as a new reader would."""
    table = IndexTable.open(index)
    return table.get(sorted(table.state()), vectors=True)


def count(index: Path) -> int:
    """How many rows the index on disk holds now (0 before its table exists)."""
    return IndexTable.open(index).count() if IndexTable.exists(index) else 0


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    write_sample_images(folder / "images", size=96)
    write_sample_texts(folder / "texts")
    (folder / "texts" / "long.md").write_text(
        "\n\n".join(" ".join(f"w{p}x{i}" for i in range(400)) for p in range(5))
    )
    (folder / "notes.csv").write_text("not,media\n")
    return folder


def test_demo_runs_against_an_in_process_emulator_without_a_key() -> None:
    done = tongyi_vision("demo", server=None, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "backend: the bundled emulator at http://127.0.0.1:" in out
    assert "NOT semantic" in out
    assert "LangChain: InMemoryVectorStore + TongyiVisionEmbeddings + TongyiImageLoader" in out
    assert (
        "LlamaIndex: MultiModalVectorStoreIndex + TongyiVisionEmbedding + TongyiImageReader" in out
    )
    # Image-to-image has a right answer even with content-derived vectors: the original.
    sections = out.split("image -> image")
    assert len(sections) == 3
    for section in sections[1:]:
        first_hit = section.splitlines()[1]
        assert first_hit.strip().startswith("1.") and first_hit.endswith("red-circle.png")
    text_hits = out.split("text -> text")[1].splitlines()[1]
    assert "A red bicycle leans against a brick wall" in text_hits
    assert "text -> video" in out
    # The red picture finds the red third of the sample video.
    for section in out.split("image -> video")[1:]:
        assert section.splitlines()[1].endswith("colours.mp4 [0-4 s]")
    assert out.count("image -> video") >= 1
    assert "usage and cost:" in out and "total:" in out and "$" in out


def test_demo_with_a_key_uses_that_service(start_emulator: Callable[..., RunningEmulator]) -> None:
    server = start_emulator()
    done = tongyi_vision("demo", "--no-video", server=server, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "backend: the live API (openai dialect, " + server.base_url in done.stdout
    assert "NOT semantic" not in done.stdout
    assert "video left out (--no-video)" in done.stdout
    assert server.stats()["billed_parts"] > 0


def test_embed_then_rerun_sends_nothing(
    start_emulator: Callable[..., RunningEmulator], media: Path, tmp_path: Path
) -> None:
    server = start_emulator()
    index = tmp_path / "index"
    done = tongyi_vision("embed", media, "--out", index, server=server)
    assert done.returncode == 0, done.stderr
    records = items(index)
    kinds = [r.kind for r in records]
    assert kinds.count("image") == 6
    assert kinds.count("text") > 6  # long.md is split into chunks
    assert len({r.id for r in records}) == len(records)
    assert all(len(r.vector) == 768 for r in records)
    assert f"embedded {len(records)} items" in done.stdout
    assert "ignored 1 file(s)" in done.stdout
    assert "failed: 0" in done.stdout
    first = server.stats()
    assert first["billed_parts"] == len(records)

    again = tongyi_vision("embed", media, "--out", index, server=server)
    assert again.returncode == 0, again.stderr
    assert "embedded 0 items" in again.stdout
    assert f"already in {index}: {len(records)}" in again.stdout
    assert server.stats()["requests"] == first["requests"]
    assert len(items(index)) == len(records)


def test_embed_clips_of_a_video(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video

    video = generate_sample_video(tmp_path / "in" / "v.mp4", seconds=9, size=(96, 64), fps=4)
    server = start_emulator()
    index = tmp_path / "index"
    done = tongyi_vision("embed", video, "--out", index, "--clip-seconds", "3", server=server)
    assert done.returncode == 0, done.stderr
    assert IndexTable.open(index).info.clip_seconds == 3.0
    # Rows are written as their requests finish, in any order.
    clips = sorted(items(index), key=lambda c: c.start_seconds or 0.0)
    assert [(c.start_seconds, c.end_seconds) for c in clips] == [
        (0.0, 3.0),
        (3.0, 6.0),
        (6.0, 9.0),
    ]
    assert clips[1].id == f"{video.resolve()}#t=3,6"
    assert clips[1].source == str(video.resolve())
    assert clips[1].content.endswith("#t=3,6") and clips[1].content.startswith("file://")
    assert clips[1].metadata["duration"] == pytest.approx(9.0)  # of the whole video
    assert {c.kind for c in clips} == {"video"}
    # A later run cuts the same clips without being told the length again.
    again = tongyi_vision("embed", video, "--out", index, server=server)
    assert again.returncode == 0, again.stderr
    assert "embedded 0 items" in again.stdout
    assert len(items(index)) == 3


def test_search_by_text_and_by_image(
    emulator: RunningEmulator, media: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert tongyi_vision("embed", media, "--out", index, server=emulator).returncode == 0

    query = "A green forest trail winds between tall pine trees."
    found = tongyi_vision("search", index, query, "-k", "3", server=emulator)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert len(lines) == 3
    assert "text-3.txt" in lines[0] and "+1.0000" in lines[0]

    image = media / "images" / "blue-square.png"
    found = tongyi_vision("search", index, "--image", image, "--json", server=emulator)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 5
    assert hits[0]["id"] == str(image.resolve())
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-6)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_exit_codes_and_one_line_errors(
    emulator: RunningEmulator, media: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    no_key = tongyi_vision("embed", media, "--out", index, server=None)
    assert no_key.returncode == 5
    assert no_key.stderr.startswith("error: no API key: set EMPIRIOLABS_API_KEY")
    assert no_key.stderr.count("\n") == 1

    wrong_key = tongyi_vision(
        "embed", media, "--out", index, server=emulator, EMPIRIOLABS_API_KEY="wrong"
    )
    assert wrong_key.returncode == 4
    assert wrong_key.stderr.count("\n") == 1 and "check the API key" in wrong_key.stderr

    missing = tongyi_vision("embed", tmp_path / "nowhere", "--out", index, server=emulator)
    assert missing.returncode == 3 and "nowhere" in missing.stderr

    usage = tongyi_vision("search", index, server=emulator)
    assert usage.returncode == 2 and "usage:" in usage.stderr

    down = tongyi_vision(
        "embed",
        media,
        "--out",
        index,
        server=emulator,
        TONGYI_VISION_BASE_URL="http://127.0.0.1:9",
    )
    assert down.returncode == 4 and "--base-url" in down.stderr.splitlines()[-1]
    # Only the run refused by the service made the table; nothing was paid into it.
    assert count(index) == 0


def _write_texts(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"note-{number:03d}.txt").write_text(f"note number {number} about item {number}")


def _wait_for_records(index: Path, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if count(index) >= at_least:
            return
        if process.poll() is not None:
            raise AssertionError(f"embed ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError("embed wrote no records")


def _start_embed(
    folder: Path, index: Path, server: RunningEmulator, chunk: int = 10, concurrency: int = 1
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tongyi_vision",
            "embed",
            str(folder),
            "--out",
            str(index),
            "--chunk-size",
            str(chunk),
            "--max-concurrency",
            str(concurrency),
            "--no-progress",
        ],
        env=command_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_embed_resumes_with_every_item_once(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    server = start_emulator("--latency", "0.25")
    folder = tmp_path / "notes"
    _write_texts(folder, NOTES)
    index = tmp_path / "index"
    process = _start_embed(folder, index, server)
    _wait_for_records(index, 2, process)
    process.kill()
    process.communicate()
    saved = len(items(index))
    assert 0 < saved < NOTES

    done = tongyi_vision("embed", folder, "--out", index, server=server)
    assert done.returncode == 0, done.stderr
    assert f"already in {index}: {saved}" in done.stdout
    ids = [r.id for r in items(index)]
    assert len(ids) == len(set(ids)) == NOTES
    assert set(ids) == {str(p.resolve()) for p in folder.iterdir()}


def test_a_kill_in_the_middle_of_a_chunk_loses_at_most_the_requests_in_flight(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    # One chunk of all the notes: six requests of 20 texts, two in flight at a time. Each
    # request's records reach the disk when it finishes, not when the chunk does.
    server = start_emulator("--latency", "0.4")
    folder = tmp_path / "notes"
    _write_texts(folder, NOTES)
    index = tmp_path / "index"
    process = _start_embed(folder, index, server, chunk=NOTES + 80, concurrency=2)
    _wait_for_records(index, 20, process)
    process.kill()
    process.communicate()
    saved = len(items(index))
    assert 20 <= saved < NOTES  # written mid-chunk
    done = tongyi_vision("embed", folder, "--out", index, server=server)
    assert done.returncode == 0, done.stderr
    assert len({r.id for r in items(index)}) == count(index) == NOTES
    # Paid twice at most: the two requests (of 20 texts) in flight when the run was killed.
    assert server.stats()["billed_parts"] <= NOTES + 2 * 20


def test_ctrl_c_saves_the_chunk_in_flight_and_nothing_is_billed_twice(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    server = start_emulator("--latency", "0.25")
    folder = tmp_path / "notes"
    _write_texts(folder, NOTES)
    index = tmp_path / "index"
    process = _start_embed(folder, index, server)
    _wait_for_records(index, 2, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopping once the requests in flight are saved" in err
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    saved = len(items(index))
    assert saved % 10 == 0 and 0 < saved < NOTES  # whole requests of 10 texts
    assert f"embedded {saved} items" in out

    done = tongyi_vision("embed", folder, "--out", index, server=server)
    assert done.returncode == 0, done.stderr
    ids = [r.id for r in items(index)]
    assert len(ids) == len(set(ids)) == NOTES
    assert server.stats()["billed_parts"] == NOTES
