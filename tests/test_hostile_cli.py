"""``tongyi-vision embed`` and ``search`` against hostile folders and damaged indexes: each
case ends in a one-line message (or a skipped file), never a hang or a traceback, and nothing
already paid for is lost or paid for again."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from lancedb.table import LanceTable

from tests._cli_fakes import Fake, index_rows, run, wait_for_rows
from tests._core_fakes import png_bytes
from tests.test_catalogue import png_header
from tongyi_vision.index import IndexTable, Row, WriteLock
from tongyi_vision.index.table import LOCK_FILE


def test_a_file_name_that_is_not_utf8_is_indexed_and_not_paid_for_twice(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"a note with an odd name")
    (folder / "plain.txt").write_text("a plain note")
    out = tmp_path / "index"
    code, output, err = run(capsys, "embed", folder, "--out", out, "--no-progress")
    assert code == 0, err
    rows = index_rows(out)
    assert {Path(r.source).name for r in rows.values()} == {"caf\\xe9.txt", "plain.txt"}
    requests = fake.requests
    code, output, _ = run(capsys, "embed", folder, "--out", out, "--no-progress")
    assert code == 0 and "embedded 0 items" in output and fake.requests == requests
    # --prune keeps it: the file is there, though its name is stored escaped.
    code, output, _ = run(capsys, "embed", folder, "--out", out, "--no-progress", "--prune")
    assert code == 0 and len(index_rows(out)) == 2


def test_links_that_loop_a_bomb_and_a_cut_picture_are_reported_and_not_sent(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "note.txt").write_text("the one good file")
    (folder / "self").symlink_to(folder / "self")
    (folder / "up").symlink_to(folder)
    (folder / "bomb.png").write_bytes(png_header(50_000, 50_000))
    picture = png_bytes(width=64, height=64)
    (folder / "cut.png").write_bytes(picture[: len(picture) // 2])
    code, _, err = run(capsys, "embed", folder, "--out", tmp_path / "i", "--no-progress")
    assert code == 3 and "Traceback" not in err
    for name in ("self", "bomb.png", "cut.png"):
        assert name in err
    assert [p for p in fake.parts if "image" in p] == []  # only the note was sent
    assert [r.kind for r in index_rows(tmp_path / "i").values()] == ["text"]


def test_a_second_writer_of_one_index_is_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index"
    with WriteLock(out):  # another embed run, still going (flock: per open file, so in-process)
        code, _, err = run(capsys, "embed", tmp_path / "note.txt", "--out", out)
        assert code == 3 and err.count("\n") == 1
        assert "being written by another tongyi-vision run" in err and str(out) in err
        old = tmp_path / "old.jsonl"
        header = {"type": "header", "format": "tongyi-vision-index", "version": 1}
        old.write_text(
            json.dumps({**header, "model": "m", "dimension": 4, "dialect": "openai"}) + "\n"
        )
        code, _, err = run(capsys, "import", old, "--out", out)
        assert code == 3 and "being written by another tongyi-vision run" in err
    assert fake.requests == 0
    assert not IndexTable.exists(out)
    assert run(capsys, "embed", tmp_path / "note.txt", "--out", out)[0] == 0  # once it is free
    assert len(index_rows(out)) == 1


def test_a_damaged_table_is_an_input_error_naming_the_index(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "note.txt").write_text("a red bicycle")
    out = tmp_path / "index"
    assert run(capsys, "embed", tmp_path / "in", "--out", out, "--no-progress")[0] == 0
    shutil.rmtree(out / "items.lance" / "data")
    code, output, err = run(capsys, "search", out, "a red bicycle")
    assert code == 3 and output == "" and "Traceback" not in err
    assert err.count("\n") == 1 and str(out) in err and "cannot be read" in err
    code, _, err = run(capsys, "export", out, "--to", tmp_path / "rows.parquet")
    assert code == 3 and "cannot be read" in err
    assert not (tmp_path / "rows.parquet").exists()
    assert not (tmp_path / "rows.parquet.partial").exists()


def test_a_table_of_another_program_is_not_taken_for_an_index(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    import lancedb

    db = lancedb.connect(tmp_path / "theirs")
    db.create_table("items", data=[{"id": "x", "vector": [0.5, 0.5]}])
    (tmp_path / "note.txt").write_text("a note")
    code, _, err = run(capsys, "search", tmp_path / "theirs", "a note")
    assert code == 3 and "did not make" in err
    code, _, err = run(capsys, "embed", tmp_path / "note.txt", "--out", tmp_path / "theirs")
    assert code == 3 and "did not make" in err and fake.requests == 0


def test_a_full_disk_ends_the_run_with_one_line_and_keeps_the_finished_requests(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for number in range(30):  # requests of 20 and 10 texts
        (folder / f"note-{number:02}.txt").write_text(f"note number {number}")
    out = tmp_path / "index"
    real = LanceTable.add
    commits = 0

    def fills_up(self: LanceTable, *args: Any, **kwargs: Any) -> Any:
        nonlocal commits
        commits += 1
        if commits > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    def second_waits_for_the_first_rows(number: int, contents: list[Any]) -> None:
        # Two commits for sure: the second request is answered once the first one's rows
        # are on disk.
        if number == 2:
            wait_for_rows(out, 1)

    fake.fail = second_waits_for_the_first_rows
    monkeypatch.setattr(LanceTable, "add", fills_up)
    code, output, err = run(
        capsys, "embed", folder, "--out", out, "--no-progress", "--max-concurrency", "2"
    )
    monkeypatch.setattr(LanceTable, "add", real)
    assert code == 1 and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert "No space left on device" in line and str(out) in line
    assert "what it holds is kept" in line and "run the same command again" in line
    assert "usage:" in output
    kept = index_rows(out)
    assert len(kept) == 20  # the first request's rows, committed before the disk filled
    sent = len(fake.parts)
    fake.fail = None
    code, output, _ = run(capsys, "embed", folder, "--out", out, "--no-progress")
    assert code == 0 and f"already in {out}: 20" in output
    assert len(fake.parts) - sent == 10 and len(index_rows(out)) == 30


def test_a_fifo_or_a_device_in_a_folder_or_as_a_path_is_skipped_not_waited_on(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    (folder / "zeros.txt").symlink_to("/dev/zero")
    (folder / "note.txt").write_text("a note")
    out = tmp_path / "index"
    code, _, err = run(capsys, "embed", folder, folder / "pipe.txt", "--out", out, "--no-progress")
    assert code == 3
    assert "pipe.txt" in err and "zeros.txt" in err and "is not a file" in err
    assert len(index_rows(out)) == 1
    os.mkfifo(tmp_path / "index.fifo")
    code, _, err = run(capsys, "embed", folder / "note.txt", "--out", tmp_path / "index.fifo")
    assert code == 3 and "is not a folder" in err
    code, _, err = run(capsys, "search", tmp_path / "index.fifo", "a note")
    assert code == 3 and "is not a folder" in err


def test_a_huge_text_file_is_refused_without_being_read(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    huge = tmp_path / "dump.txt"
    with huge.open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: nothing to read but zeros
    code, _, err = run(capsys, "embed", huge, "--out", tmp_path / "i", "--no-progress")
    assert code == 3 and "limit for a text file" in err and fake.requests == 0


def test_an_index_kept_inside_the_folder_it_indexes_never_indexes_itself(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index.txt"  # a folder whose name looks like a text file
    for _ in range(3):
        code, _, err = run(capsys, "embed", tmp_path, "--out", out, "--no-progress")
        assert code == 0, err
    assert [Path(r.source).name for r in index_rows(out).values()] == ["note.txt"]


def test_many_refused_files_in_one_large_chunk_do_not_recurse(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    picture = png_bytes(width=32, height=32)
    for number in range(1200):
        (folder / f"cut{number:04}.png").write_bytes(picture[:-30])
    (folder / "note.txt").write_text("a note")
    out = tmp_path / "i"
    code, output, err = run(capsys, "embed", folder, "--out", out, "--chunk-size", "2000")
    assert code == 3 and "RecursionError" not in err
    assert "failed: 1200" in output and len(index_rows(out)) == 1


def test_a_folder_left_by_a_run_that_made_no_table_is_used(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index"
    out.mkdir()
    (out / LOCK_FILE).touch()  # killed before its table was made
    code, _, err = run(capsys, "embed", tmp_path / "note.txt", "--out", out, "--no-progress")
    assert code == 0, err
    assert IndexTable.open(out).info.dimension == 768 and len(index_rows(out)) == 1


def test_a_row_with_metadata_json_cannot_hold_is_kept_readable(tmp_path: Path) -> None:
    from tongyi_vision.index import IndexInfo

    table = IndexTable.create(
        tmp_path / "i", IndexInfo("tongyi-embedding-vision-flash", 4, "openai")
    )
    odd: dict[str, Any] = {"ratio": float("nan"), "when": Path("/x"), "id": "shadowed"}
    table.add([Row("a", "a", "text", "0", "a", [1.0, 0, 0, 0], odd)])
    [row] = IndexTable.open(tmp_path / "i").get(["a"])
    assert row.metadata == {"ratio": None, "when": "/x"}  # a column's name is not metadata
