"""``tongyi-vision embed`` and ``search`` against hostile folders and damaged indexes: each
case ends in a one-line message (or a skipped file), never a hang or a traceback, and nothing
already paid for is lost or paid for again."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests._cli_fakes import Fake, run
from tests._core_fakes import png_bytes
from tests.test_catalogue import png_header
from tongyi_vision.cli.index import Header, IndexWriter, read_index


def records(index: Path) -> list[dict[str, Any]]:
    lines = index.read_bytes().splitlines()[1:]
    return [json.loads(line) for line in lines]


def test_a_file_name_that_is_not_utf8_is_indexed_and_not_paid_for_twice(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"a note with an odd name")
    (folder / "plain.txt").write_text("a plain note")
    out = tmp_path / "index.jsonl"
    code, output, err = run(capsys, "embed", folder, "--out", out, "--no-progress")
    assert code == 0, err
    assert {Path(r["source"]).name for r in records(out)} == {"caf\\xe9.txt", "plain.txt"}
    requests = fake.requests
    code, output, _ = run(capsys, "embed", folder, "--out", out, "--no-progress")
    assert code == 0 and "embedded 0 items" in output and fake.requests == requests


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
    code, _, err = run(capsys, "embed", folder, "--out", tmp_path / "i.jsonl", "--no-progress")
    assert code == 3 and "Traceback" not in err
    for name in ("self", "bomb.png", "cut.png"):
        assert name in err
    assert [p for p in fake.parts if "image" in p] == []  # only the note was sent


def test_a_second_writer_of_one_index_is_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index.jsonl"
    holder = IndexWriter(out)  # another embed run, still going
    holder.start(Header("tongyi-embedding-vision-flash", 768, "openai"))
    try:
        code, _, err = run(capsys, "embed", tmp_path / "note.txt", "--out", out)
    finally:
        holder.close()
    assert code == 3 and "being written by another tongyi-vision embed" in err
    assert fake.requests == 0
    assert run(capsys, "embed", tmp_path / "note.txt", "--out", out)[0] == 0  # once it is free


def test_search_skips_corrupt_records_naming_their_lines(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a red bicycle")
    out = tmp_path / "index.jsonl"
    assert run(capsys, "embed", tmp_path / "note.txt", "--out", out, "--no-progress")[0] == 0
    good = records(out)[0]
    broken = [
        {**good, "id": "string", "vector": "not a vector"},
        {**good, "id": "null", "vector": None},
        {**good, "id": "nested", "vector": [[0.1]] * 768},
        {**good, "id": "nan", "vector": [float("nan")] * 768},
        {**good, "id": "meta", "metadata": "not an object"},
        {**good, "id": "bools", "vector": [True] * 768},
    ]
    with out.open("a") as handle:
        handle.write("this line is no JSON\n")
        for record in broken:
            handle.write(json.dumps(record) + "\n")
    code, output, err = run(capsys, "search", out, "a red bicycle", "--json")
    assert code == 0 and "Traceback" not in err
    assert [hit["id"] for hit in json.loads(output)] == [good["id"]]
    for line in range(3, 10):
        assert f"line {line} " in err
    assert "nan" not in output.lower()


def test_a_full_disk_ends_the_run_with_one_line_and_keeps_what_was_written(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index.jsonl"
    real = IndexWriter.append

    def full(self: IndexWriter, batch: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(IndexWriter, "append", full)
    code, _, err = run(capsys, "embed", tmp_path / "note.txt", "--out", out, "--no-progress")
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    monkeypatch.setattr(IndexWriter, "append", real)
    assert read_index(out).header.model  # the header written before the disk filled is kept


def test_a_fifo_or_a_device_in_a_folder_or_as_a_path_is_skipped_not_waited_on(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    (folder / "zeros.txt").symlink_to("/dev/zero")
    (folder / "note.txt").write_text("a note")
    out = tmp_path / "index.jsonl"
    code, _, err = run(capsys, "embed", folder, folder / "pipe.txt", "--out", out, "--no-progress")
    assert code == 3
    assert "pipe.txt" in err and "zeros.txt" in err and "is not a file" in err
    assert len(records(out)) == 1
    os.mkfifo(tmp_path / "index.fifo")
    code, _, err = run(capsys, "embed", folder / "note.txt", "--out", tmp_path / "index.fifo")
    assert code == 3 and "not a regular file" in err
    code, _, err = run(capsys, "search", tmp_path / "index.fifo", "a note")
    assert code == 3 and "not a regular file" in err


def test_a_huge_text_file_is_refused_without_being_read(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    huge = tmp_path / "dump.txt"
    with huge.open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: nothing to read but zeros
    code, _, err = run(capsys, "embed", huge, "--out", tmp_path / "i.jsonl", "--no-progress")
    assert code == 3 and "limit for a text file" in err and fake.requests == 0


def test_an_index_kept_inside_the_folder_it_indexes_never_indexes_itself(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index.txt"
    for _ in range(3):
        code, _, err = run(capsys, "embed", tmp_path, "--out", out, "--no-progress")
        assert code == 0, err
    assert [Path(r["source"]).name for r in records(out)] == ["note.txt"]


def test_many_refused_files_in_one_large_chunk_do_not_recurse(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    picture = png_bytes(width=32, height=32)
    for number in range(1200):
        (folder / f"cut{number:04}.png").write_bytes(picture[:-30])
    (folder / "note.txt").write_text("a note")
    out = tmp_path / "i.jsonl"
    code, output, err = run(capsys, "embed", folder, "--out", out, "--chunk-size", "2000")
    assert code == 3 and "RecursionError" not in err
    assert "failed: 1200" in output and len(records(out)) == 1


def test_an_index_torn_before_its_header_was_written_starts_again(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a note")
    out = tmp_path / "index.jsonl"
    out.write_text('{"type": "header", "format": "tongyi-vis')  # killed while writing it
    code, _, err = run(capsys, "embed", tmp_path / "note.txt", "--out", out, "--no-progress")
    assert code == 0, err
    assert read_index(out).header.dimension == 768 and len(records(out)) == 1
