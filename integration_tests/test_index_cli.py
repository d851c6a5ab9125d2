"""The index as a user builds it: ``tongyi-vision embed --out INDEX`` over a folder against
a real emulator process, re-runs, changes, pruning, search, one writer at a time, a killed run,
``export``/``import`` and ``index`` (the ANN index).

The emulator's ``/stats`` counters are the ground truth of what was sent and billed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from integration_tests.test_cli import command_env, count, items, tongyi_vision
from tongyi_vision import Client, cli
from tongyi_vision.index import IndexInfo, IndexTable, Row
from tongyi_vision.index.table import ANN_MIN_ROWS
from tongyi_vision.samples import draw_shape, write_sample_images, write_sample_texts

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

FLASH = "tongyi-embedding-vision-flash"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    write_sample_images(media / "images", size=96)
    write_sample_texts(media / "texts")
    return media


def sent(server: RunningEmulator, since: dict[str, int]) -> tuple[int, int]:
    """Requests and billed parts the emulator saw since ``since`` (its stats then)."""
    now = server.stats()
    return now["requests"] - since["requests"], now["billed_parts"] - since["billed_parts"]


def embed(server: RunningEmulator, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return tongyi_vision("embed", *args, "--no-progress", server=server)


def test_build_rerun_change_one_image_then_search_by_text_and_image(
    emulator: RunningEmulator, folder: Path, tmp_path: Path
) -> None:
    index = tmp_path / "photos.index"
    before = emulator.stats()
    done = embed(emulator, folder, "--out", index)
    assert done.returncode == 0, done.stderr
    assert "embedded 12 items (6 text, 6 image)" in done.stdout
    assert sent(emulator, before)[1] == 12 == count(index)

    before = emulator.stats()
    again = embed(emulator, folder, "--out", index)
    assert again.returncode == 0, again.stderr
    assert "embedded 0 items" in again.stdout and f"already in {index}: 12" in again.stdout
    assert "usage: 0 tokens, 0 requests" in again.stdout
    assert sent(emulator, before) == (0, 0)

    changed = folder / "images" / "red-circle.png"
    old = {r.id: r for r in items(index)}[str(changed.resolve())]
    draw_shape("circle", (20, 200, 40), size=96).save(changed)  # now a green circle
    before = emulator.stats()
    third = embed(emulator, folder, "--out", index)
    assert third.returncode == 0, third.stderr
    assert "embedded 1 item (1 image)" in third.stdout
    assert sent(emulator, before) == (1, 1)  # one request, one part: the changed image
    rows = {r.id: r for r in items(index)}
    assert len(rows) == 12
    new = rows[str(changed.resolve())]
    assert new.sha256 != old.sha256 and new.vector != old.vector

    query = "A red bicycle leans against a brick wall in the morning sun."
    found = tongyi_vision("search", index, query, "-k", "3", server=emulator)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert len(lines) == 3 and "text-1.txt" in lines[0] and "+1.0000" in lines[0]

    found = tongyi_vision("search", index, "--image", changed, "-k", "2", server=emulator)
    assert found.returncode == 0, found.stderr
    first = found.stdout.splitlines()[0]
    assert first.startswith("  1. +1.0000  image") and first.endswith("red-circle.png")


def test_search_where_and_json_fields(
    emulator: RunningEmulator, folder: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert embed(emulator, folder, "--out", index).returncode == 0
    query = "Blue ocean waves roll onto a quiet sandy beach."
    found = tongyi_vision(
        "search", index, query, "--where", "kind = 'image'", "-k", "10", "--json", server=emulator
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 6 and {h["kind"] for h in hits} == {"image"}
    assert [h["rank"] for h in hits] == list(range(1, 7))
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    for hit in hits:
        assert set(hit) == {"rank", "score", "id", "source", "kind", "content", "metadata"}
        assert hit["id"] == hit["source"] and Path(hit["source"]).is_file()
        assert hit["content"] == Path(hit["source"]).as_uri()
        assert hit["metadata"]["mime_type"].startswith("image/")
        assert (hit["metadata"]["width"], hit["metadata"]["height"]) == (96, 96)

    text = tongyi_vision("search", index, query, "-k", "1", "--json", server=emulator)
    [hit] = json.loads(text.stdout)
    assert hit["kind"] == "text" and hit["content"] == query and hit["score"] == pytest.approx(1)

    before = emulator.stats()
    bad = tongyi_vision("search", index, query, "--where", "kind = = 'image'", server=emulator)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1
    assert "\"kind = = 'image'\" is not a valid LanceDB SQL filter" in bad.stderr
    none = tongyi_vision("search", index, query, "--where", "kind = 'video'", server=emulator)
    assert none.returncode == 0 and none.stdout == "" and "no rows match --where" in none.stderr
    assert sent(emulator, before) == (0, 0)  # neither query was paid for


def test_prune_after_deleting_a_file(
    emulator: RunningEmulator, folder: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert embed(emulator, folder, "--out", index).returncode == 0
    gone = folder / "texts" / "text-3.txt"
    gone.unlink()
    kept = embed(emulator, folder, "--out", index)
    assert kept.returncode == 0 and count(index) == 12  # without --prune the rows stay
    before = emulator.stats()
    pruned = embed(emulator, folder, "--out", index, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed the older rows of 1 changed or deleted file(s)" in pruned.stdout
    assert sent(emulator, before) == (0, 0)
    assert str(gone.resolve()) not in {r.source for r in items(index)} and count(index) == 11


def test_search_with_a_video_clip(emulator: RunningEmulator, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from tongyi_vision.samples import generate_sample_video

    video = generate_sample_video(
        tmp_path / "in" / "colours.mp4", seconds=9, size=(96, 64), fps=4, segment_seconds=3
    )
    index = tmp_path / "index"
    done = embed(emulator, video, "--out", index, "--clip-seconds", "3")
    assert done.returncode == 0, done.stderr
    assert "embedded 3 items (3 video)" in done.stdout
    query = generate_sample_video(
        tmp_path / "query.mp4", seconds=3, size=(96, 64), fps=4, segment_seconds=3
    )
    found = tongyi_vision("search", index, "--video", query, "--json", server=emulator)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and {h["kind"] for h in hits} == {"video"}
    # The query is the first colour, as the first clip is.
    assert hits[0]["id"] == f"{video.resolve()}#t=0,3"
    assert hits[0]["metadata"]["start_seconds"] == 0.0
    assert hits[0]["metadata"]["end_seconds"] == 3.0


def _start_embed(
    source: Path, index: Path, server: RunningEmulator, *extra: str
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tongyi_vision", "embed", str(source), "--out", str(index)]
    return subprocess.Popen(
        [*command, "--no-progress", *extra],
        env=command_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until(predicate: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"embed ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the embed run did not get there in 60 s")


def test_a_second_writer_is_refused_and_a_killed_run_keeps_its_commits(
    start_emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    server = start_emulator("--latency", "0.3")
    notes = tmp_path / "notes"
    notes.mkdir()
    total = 300
    for number in range(total):
        (notes / f"note-{number:03}.txt").write_text(f"note number {number} about item {number}")
    index = tmp_path / "index"
    # Requests of 5 texts one at a time: 60 requests of 0.3 s each, 18 s at least.
    first = _start_embed(notes, index, server, "--chunk-size", "5", "--max-concurrency", "1")
    try:
        _wait_until(lambda: count(index) >= 10, first)
        second = tongyi_vision("embed", notes, "--out", index, server=server)
        assert second.returncode == 3, second.stderr
        assert second.stderr.count("\n") == 1
        assert f"error: {index}: is being written by another tongyi-vision run" in second.stderr
        old = tmp_path / "old.jsonl"
        old.write_text(
            json.dumps(
                {"type": "header", "format": "tongyi-vision-index", "version": 1, "model": FLASH}
                | {"dimension": 768, "dialect": "openai"}
            )
            + "\n"
        )
        for command in (("import", old, "--out", index), ("index", index)):
            busy = tongyi_vision(*command, server=server)
            assert busy.returncode == 3 and "being written" in busy.stderr
        assert first.poll() is None  # still going: killed midway
    finally:
        first.kill()
        first.communicate()
    assert first.returncode == -9
    kept = items(index)
    assert 10 <= len(kept) < total and len(kept) % 5 == 0  # whole requests
    assert all(len(r.vector) == 768 and r.kind == "text" for r in kept)
    # The request in flight at the kill may still be answered (and billed) by the server.
    deadline = time.monotonic() + 10
    while server.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    billed_first = server.stats()["billed_parts"]
    assert len(kept) <= billed_first <= len(kept) + 5

    done = tongyi_vision("embed", notes, "--out", index, "--no-progress", server=server)
    assert done.returncode == 0, done.stderr
    assert f"already in {index}: {len(kept)}" in done.stdout
    billed = server.stats()["billed_parts"]
    assert billed - billed_first == total - len(kept)  # the re-run sends only the rest
    # Across both runs: every item billed, none lost; only the one request in flight at the
    # kill (at most 5 texts) could have been billed twice.
    assert total <= billed <= total + 5
    ids = [r.id for r in items(index)]
    assert len(ids) == len(set(ids)) == total
    assert set(ids) == {str(p.resolve()) for p in notes.iterdir()}


def test_export_then_import_and_search_the_copy(
    emulator: RunningEmulator, folder: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert embed(emulator, folder, "--out", index).returncode == 0
    for name in ("rows.parquet", "rows.jsonl"):
        target = tmp_path / name
        exported = tongyi_vision("export", index, "--to", target, server=None)
        assert exported.returncode == 0, exported.stderr
        assert f"exported 12 rows of {index} to {target}" in exported.stdout
        copy = tmp_path / f"copy-of-{name}"
        before = emulator.stats()
        imported = tongyi_vision("import", target, "--out", copy, server=None)
        assert imported.returncode == 0, imported.stderr
        assert "imported 12 rows" in imported.stdout
        assert sent(emulator, before) == (0, 0)
        original = {r.id: r for r in items(index)}
        assert {r.id: r for r in items(copy)} == original
        query = "A green forest trail winds between tall pine trees."
        found = tongyi_vision("search", copy, query, "-k", "1", server=emulator)
        assert found.returncode == 0 and "text-3.txt" in found.stdout and "+1.0000" in found.stdout
        # The copy is an index like any other: embedding the same folder into it sends nothing.
        before = emulator.stats()
        assert embed(emulator, folder, "--out", copy).returncode == 0
        assert sent(emulator, before) == (0, 0)


def test_the_ann_index_needs_enough_rows_and_search_works_once_built(
    emulator: RunningEmulator, client_factory: Callable[..., Client], folder: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    assert embed(emulator, folder / "texts", "--out", small).returncode == 0
    refused = tongyi_vision("index", small, server=None)
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1
    assert f"{small}: holds 6 rows; an ANN index needs {ANN_MIN_ROWS:,}" in refused.stderr

    import numpy as np

    large = tmp_path / "large"
    table = IndexTable.create(large, IndexInfo(FLASH, 768, "openai"))
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((ANN_MIN_ROWS, 768)).astype(np.float32)
    for start in range(0, ANN_MIN_ROWS, 1000):
        table.add(
            [
                Row(f"/synthetic/{n}", f"/synthetic/{n}", "image", "0" * 64, "", vectors[n])
                for n in range(start, start + 1000)
            ]
        )
    query = "a red bicycle against a brick wall"
    known = client_factory().embed_texts([query]).vectors[0]
    table.add([Row("/notes/bike.txt", "/notes/bike.txt", "text", "1" * 64, query, known)])

    built = tongyi_vision("index", large, server=None, timeout=600)
    assert built.returncode == 0, built.stderr
    assert f"built the ANN index of {large} (IVF_RQ)" in built.stdout
    settings = json.loads(built.stdout.split("(IVF_RQ): ", 1)[1])
    assert settings["rows"] == ANN_MIN_ROWS + 1 and settings["partitions"] >= 1
    assert IndexTable.open(large).has_ann()

    found = tongyi_vision("search", large, query, "-k", "3", "--json", server=emulator)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits[0]["id"] == "/notes/bike.txt" and hits[0]["score"] == pytest.approx(1, abs=1e-4)
    only = tongyi_vision("search", large, query, "--where", "kind = 'text'", server=emulator)
    assert only.returncode == 0 and len(only.stdout.splitlines()) == 1


def test_embed_without_lancedb_names_the_extra_and_sends_nothing(
    emulator: RunningEmulator,
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "lancedb", None)  # `import lancedb` fails
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", emulator.api_key)
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", emulator.base_url)
    index = tmp_path / "index"
    before = emulator.stats()
    for argv in (["embed", str(folder), "--out", str(index)], ["import", "x.jsonl", "--out", "i"]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 5 and err.count("\n") == 1
        assert "needs lancedb" in err and "pip install 'tongyi-vision[index]'" in err
    assert not index.exists()
    assert sent(emulator, before) == (0, 0)
