"""The ``tongyi-vision`` command: parsing, exit codes, error lines, the index (a LanceDB table)
and resuming.

The service is a fake behind ``httpx.MockTransport`` (sockets are blocked); the
command builds its client through ``common.make_client``, which the ``fake`` fixture
replaces with one wired to the fake. What the command wrote is read back with
``IndexTable.open`` as a new reader would.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._cli_fakes import Fake, error, fake_vector, index_rows, run, wait_for_rows
from tongyi_vision import Client, cli
from tongyi_vision.cli import app, common
from tongyi_vision.cli.embed import DEFAULT_CHUNK_SIZE, Embedder, RowWriter
from tongyi_vision.cli.items import Item, collect_items
from tongyi_vision.index import DEFAULT_ANN_THRESHOLD, IndexInfo, IndexTable, Row
from tongyi_vision.index.table import LOCK_FILE
from tongyi_vision.media.texts import split_text
from tongyi_vision.samples import write_sample_images, write_sample_texts
from tongyi_vision.wire.limits import estimate_text_tokens

DIMENSION = 768


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    write_sample_images(folder / "images", size=64)
    write_sample_texts(folder / "texts")
    return folder


# --- parsing and usage errors ---


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "embed", "search", "index", "export", "import", "serve", "ui"):
        assert command in out
    assert "exit codes" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["embed", "photos"],  # --out missing
        ["embed", "--out", "idx"],  # no PATH
        ["embed", "photos", "--out", "idx", "--on-error", "maybe"],
        ["embed", "photos", "--out", "idx", "--max-concurrency", "0"],
        ["embed", "photos", "--out", "idx", "--clip-seconds", "-1"],
        ["embed", "photos", "--out", "idx", "--ann-threshold", "-5"],
        ["search", "idx"],  # neither a query nor --image
        ["search", "idx", "a cat", "--image", "cat.jpg"],
        ["search", "idx", "a cat", "--video", "cat.mp4"],
        ["search", "idx", "  "],
        ["search", "idx", "a cat", "-k", "0"],
        ["search", "idx", "a cat", "--where", " "],
        ["export", "idx", "--to", "rows.csv"],
        ["export", "idx"],  # --to missing
        ["import", "old.jsonl"],  # --out missing
        ["index"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_parser_reads_embed_options() -> None:
    args = cli.build_parser().parse_args(
        [
            *("embed", "a", "b", "--out", "x.index", "--model", "tongyi-embedding-vision-plus"),
            *("--dialect", "dashscope", "--dimension", "512", "--base-url", "http://127.0.0.1:9"),
            *("--max-concurrency", "3", "--clip-seconds", "2.5", "--on-error", "stop"),
            *("--prune", "--ann-threshold", "10_000"),
        ]
    )
    assert args.paths == ["a", "b"]
    assert args.out == Path("x.index")
    assert (args.model, args.dialect, args.dimension) == (
        "tongyi-embedding-vision-plus",
        "dashscope",
        512,
    )
    assert (args.base_url, args.max_concurrency) == ("http://127.0.0.1:9", 3)
    assert (args.clip_seconds, args.on_error, args.chunk_size) == (2.5, "stop", DEFAULT_CHUNK_SIZE)
    assert (args.prune, args.ann_threshold) == (True, 10_000)
    defaults = cli.build_parser().parse_args(["embed", "a", "--out", "x"])
    assert (defaults.prune, defaults.ann_threshold) == (False, DEFAULT_ANN_THRESHOLD)
    assert defaults.max_concurrency == 8


def test_help_imports_no_optional_dependency() -> None:
    code = (
        "import sys\n"
        "from tongyi_vision import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('langchain_core', 'llama_index', 'PIL', 'av', 'tqdm', 'uvicorn', 'starlette',\n"
        "         'lancedb', 'pyarrow', 'numpy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "             or m.startswith('tongyi_vision.emulator')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- exit codes and one-line errors ---


def test_no_api_key_exits_5_with_the_variable_to_set(
    capsys: pytest.CaptureFixture[str], samples: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "embed", samples, "--out", tmp_path / "idx")
    assert code == common.EXIT_CONFIG == 5
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: no API key: set EMPIRIOLABS_API_KEY")
    assert "tongyi-vision demo" in err
    assert not (tmp_path / "idx").exists()  # the folder made for the lock is gone again


def test_empty_api_key_counts_as_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "")
    code, _, err = run(capsys, "search", tmp_path / "none", "cat")
    # A missing index is found before the key is needed: input error first.
    assert code == 3 and "no such index" in err
    code, _, err = run(capsys, "embed", tmp_path, "--out", tmp_path / "idx")
    assert code == 5
    assert "EMPIRIOLABS_API_KEY" in err


def test_dashscope_dialect_names_its_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "embed", tmp_path, "--out", tmp_path / "idx", "--dialect", "dashscope"
    )
    assert code == 5
    assert "set DASHSCOPE_API_KEY" in err


def test_missing_path_exits_3(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "embed", tmp_path / "nope", "--out", tmp_path / "idx")
    assert code == common.EXIT_INPUT == 3
    assert err.count("\n") == 1
    assert "nope" in err and "no such file or folder" in err
    assert fake.requests == 0
    assert not (tmp_path / "idx").exists()


def test_a_named_file_of_another_kind_exits_3(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 not media")
    code, _, err = run(capsys, "embed", tmp_path / "report.pdf", "--out", tmp_path / "idx")
    assert code == 3
    assert "report.pdf" in err and "not an image, a video or a text file" in err


@pytest.mark.parametrize(
    ("status", "code", "remedy"),
    [
        (401, "InvalidApiKey", "check the API key"),
        (403, "AccessDenied", "enable the model"),
        (404, "ModelNotFound", "check --model"),
        (500, "InternalError", "try again later"),
    ],
)
def test_api_errors_exit_4_with_a_remedy(
    capsys: pytest.CaptureFixture[str],
    fake: Fake,
    samples: Path,
    tmp_path: Path,
    status: int,
    code: str,
    remedy: str,
) -> None:
    fake.fail = lambda number, contents: error(status, "the provider says\nno", code)
    exit_code, _, err = run(capsys, "embed", samples, "--out", tmp_path / "idx")
    assert exit_code == common.EXIT_API == 4
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the provider says no")
    assert remedy in lines[0]


@pytest.mark.parametrize("what", ["a folder of other files", "a file", "an old JSONL index"])
def test_an_out_that_is_no_index_folder_exits_3_and_is_left_as_it_was(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path, what: str
) -> None:
    out = tmp_path / "taken"
    if what == "a folder of other files":
        out.mkdir()
        (out / "thesis.tex").write_text("mine")
        remedy = "choose a new or empty folder"
    elif what == "a file":
        out.write_text("mine")
        remedy = "choose another --out"
    else:
        out.write_text('{"type":"header","format":"tongyi-vision-index","version":1}\n')
        remedy = "tongyi-vision import"
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_bytes()
    code, _, err = run(capsys, "embed", samples, "--out", out)
    assert code == 3
    assert err.count("\n") == 1 and "taken" in err and remedy in err
    assert fake.requests == 0
    after = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_bytes()
    assert after == before  # no lock file, no table


def test_other_failures_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    from tongyi_vision import TongyiVisionError

    def broken(args: argparse.Namespace) -> int:
        raise TongyiVisionError("something else\nwent wrong")

    assert app.run_handler(broken, argparse.Namespace()) == 1
    assert capsys.readouterr().err == "error: something else went wrong\n"


def test_keyboard_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    assert app.run_handler(interrupted, argparse.Namespace()) == 130
    assert "interrupted" in capsys.readouterr().err


def test_missing_extra_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    from tongyi_vision import MissingDependencyError

    def needs_extra(args: argparse.Namespace) -> int:
        raise MissingDependencyError("tqdm", "progress", "the bar")

    assert app.run_handler(needs_extra, argparse.Namespace()) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tongyi-vision[progress]" in err


# --- embed: the index ---


def test_embed_writes_one_row_per_item_and_the_settings(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    code, stdout, _ = run(capsys, "embed", samples, "--out", out, "--no-progress")
    assert code == 0
    table = IndexTable.open(out)
    assert (table.info.model, table.info.dimension, table.info.dialect) == (
        "tongyi-embedding-vision-flash",
        768,
        "openai",
    )
    assert table.info.clip_seconds == 10.0 and table.info.created
    rows = index_rows(out)
    assert len(rows) == table.count() == 12
    assert {r.kind for r in rows.values()} == {"text", "image"}
    for row in rows.values():
        assert Path(row.source).is_absolute() and row.sha256 and len(row.sha256) == 64
        assert len(row.vector) == 768
        assert (row.start_seconds, row.end_seconds) == (None, None)
    red_path = (samples / "images" / "red-circle.png").resolve()
    red = rows[str(red_path)]
    assert red.source == str(red_path) and red.content == red_path.as_uri()
    assert (
        red.metadata["mime_type"] == "image/png" and red.metadata["file_name"] == "red-circle.png"
    )
    assert (red.metadata["width"], red.metadata["height"]) == (64, 64)
    text_path = (samples / "texts" / "text-1.txt").resolve()
    text = rows[str(text_path)]
    assert text.source == str(text_path) and text.content.startswith("A red bicycle")
    # The vector stored is the one the service answered for that very part (as float32).
    assert text.vector == pytest.approx(fake_vector({"text": text.content}), abs=1e-6)
    assert "embedded 12 items (6 text, 6 image)" in stdout
    assert "failed: 0" in stdout and "usage: 60 tokens" in stdout
    # One run leaves one compacted version: a single data file, no versions kept behind.
    assert len(list((out / "items.lance" / "data").iterdir())) == 1
    assert (out / LOCK_FILE).exists()


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that tqdm draws its bar."""

    def isatty(self) -> bool:
        return True


def test_a_progress_bar_runs_on_a_terminal_and_not_in_a_log(
    monkeypatch: pytest.MonkeyPatch, fake: Fake, samples: Path, tmp_path: Path
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["embed", str(samples), "--out", str(tmp_path / "a"), "--chunk-size", "5"]) == 0
    assert "embed: 100%" in terminal.getvalue() and "12/12" in terminal.getvalue()

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert cli.main(["embed", str(samples), "--out", str(tmp_path / "b")]) == 0
    assert log.getvalue() == ""

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["embed", str(samples), "--out", str(tmp_path / "c"), "--no-progress"]) == 0
    assert terminal.getvalue() == ""


def test_rerun_sends_nothing_and_changed_files_are_sent_again(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    sent = len(fake.parts)
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0
    assert len(fake.parts) == sent
    assert "embedded 0 items" in stdout and f"already in {out}: 12" in stdout
    assert "0 requests" in stdout

    changed_path = samples / "texts" / "text-2.txt"
    old = index_rows(out)[str(changed_path.resolve())]
    changed_path.write_text("Something else entirely.\n")
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0
    assert fake.parts[sent:] == [{"text": "Something else entirely."}]
    assert "removed the older rows of 1 changed or deleted file(s)" in stdout
    rows = index_rows(out)
    assert len(rows) == 12
    changed = rows[str(changed_path.resolve())]
    assert changed.content == "Something else entirely."
    assert changed.sha256 != old.sha256 and changed.vector != old.vector


def test_a_changed_file_with_fewer_chunks_leaves_none_of_its_old_rows(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    notes = tmp_path / "in" / "notes.md"
    notes.parent.mkdir()
    notes.write_text("\n\n".join(" ".join(f"w{p}x{i}" for i in range(400)) for p in range(4)))
    out = tmp_path / "index"
    assert run(capsys, "embed", notes.parent, "--out", out)[0] == 0
    chunks = index_rows(out)
    assert len(chunks) > 1 and all("#chunk=" in i for i in chunks)
    notes.write_text("a short note now")
    code, _, err = run(capsys, "embed", notes.parent, "--out", out)
    assert code == 0, err
    rows = index_rows(out)
    assert list(rows) == [str(notes.resolve())]  # the old chunks went with the change
    assert rows[str(notes.resolve())].content == "a short note now"


def test_prune_removes_the_rows_of_deleted_files_only_when_asked(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    gone = samples / "images" / "red-circle.png"
    gone.unlink()
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0 and "embedded 0 items" in stdout
    assert str(gone.resolve()) in index_rows(out)  # kept: no --prune
    sent = len(fake.parts)
    code, stdout, _ = run(capsys, "embed", samples, "--out", out, "--prune")
    assert code == 0, stdout
    rows = index_rows(out)
    assert len(rows) == 11 and str(gone.resolve()) not in rows
    assert "removed the older rows of 1 changed or deleted file(s)" in stdout
    assert len(fake.parts) == sent
    # Files of the index outside the paths of this run stay while they exist.
    code, _, _ = run(capsys, "embed", samples / "texts", "--out", out, "--prune")
    assert code == 0 and len(index_rows(out)) == 11


def test_rows_are_committed_as_each_request_finishes_while_others_are_in_flight(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for number in range(30):
        (folder / f"note-{number:02}.txt").write_text(f"note number {number}")
    out = tmp_path / "index"
    committed_while_in_flight: list[bool] = []

    def second_waits_for_the_first_rows(number: int, contents: list[Any]) -> None:
        # One call of 30 texts: requests of 20 and 10, both in flight at once. The second is
        # answered only once a reader of its own sees the first one's rows on disk, so the
        # call cannot have finished when they were committed.
        if number == 2:
            committed_while_in_flight.append(wait_for_rows(out, 1))

    fake.fail = second_waits_for_the_first_rows
    code, _, err = run(capsys, "embed", folder, "--out", out, "--max-concurrency", "2")
    assert code == 0, err
    assert committed_while_in_flight == [True]
    assert len(index_rows(out)) == 30


def test_max_concurrency_bounds_the_requests_of_every_call(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    original = fake.handler

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            threading.Event().wait(0.02)  # long enough for another call's request to overlap
            return original(request)
        finally:
            with lock:
                in_flight -= 1

    fake.handler = handler  # type: ignore[method-assign]
    # Chunks of 2 items: two calls in flight at once, each with a request of its own.
    code, _, err = run(
        capsys,
        "embed",
        samples,
        "--out",
        tmp_path / "i",
        "--chunk-size",
        "2",
        "--max-concurrency",
        "1",
    )
    assert code == 0, err
    assert fake.requests >= 6 and peak == 1


def test_an_index_keeps_its_dialect_and_vector_size(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    texts = samples / "texts"
    code, _, err = run(
        capsys, "embed", texts, "--out", out, "--dialect", "dashscope", "--dimension", "256"
    )
    assert code == 0, err
    info = IndexTable.open(out).info
    assert (info.dialect, info.dimension) == ("dashscope", 256)
    assert all(len(r.vector) == 256 for r in index_rows(out).values())

    (texts / "extra.txt").write_text("One more note.")
    code, _, err = run(capsys, "embed", texts, "--out", out)  # no --dialect, no --dimension
    assert code == 0, err
    assert fake.parts[-1] == {"text": "One more note."}
    assert fake.paths[-1].endswith("/multimodal-embedding")

    code, out_text, err = run(capsys, "search", out, "One more note.", "-k", "1")
    assert code == 0, err
    assert "extra.txt" in out_text and "+1.0000" in out_text
    assert fake.paths[-1].endswith("/multimodal-embedding")

    code, _, err = run(
        capsys, "embed", texts, "--out", out, "--dimension", "512", "--dialect", "dashscope"
    )
    assert code == 3 and "256-dimensional" in err


def test_an_index_keeps_its_clip_length(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    code, _, err = run(capsys, "embed", samples / "texts", "--out", out, "--clip-seconds", "4")
    assert code == 0, err
    assert IndexTable.open(out).info.clip_seconds == 4.0
    # Another length would put a second set of clips next to the first: refused.
    code, _, err = run(capsys, "embed", samples, "--out", out, "--clip-seconds", "10")
    assert code == 3 and "clips of 4 s" in err and "--clip-seconds" in err
    code, _, err = run(capsys, "embed", samples, "--out", out, "--clip-seconds", "4")
    assert code == 0, err


def test_long_text_files_are_split_into_chunks_within_the_limit(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    paragraphs = [
        f"Paragraph {n}: " + " ".join(f"word{n}x{i}" for i in range(300)) for n in range(6)
    ]
    notes.write_text("\n\n".join(paragraphs))
    out = tmp_path / "index"
    assert run(capsys, "embed", notes, "--out", out)[0] == 0
    rows = index_rows(out)
    chunks = [rows[f"{notes.resolve()}#chunk={i}"] for i in range(len(rows))]
    assert len(chunks) > 1
    for number, chunk in enumerate(chunks):
        assert chunk.source == str(notes.resolve()) and chunk.kind == "text"
        assert (chunk.metadata["chunk"], chunk.metadata["chunks"]) == (number, len(chunks))
        assert estimate_text_tokens(chunk.content) <= 1024
    assert " ".join(c.content for c in chunks).split() == " ".join(paragraphs).split()


def test_split_text_cuts_words_and_unspaced_runs() -> None:
    assert split_text("  \n\n \n") == []
    assert split_text("one\n\ntwo") == ["one\n\ntwo"]
    cjk = "图" * 2500
    pieces = split_text(cjk)
    assert "".join(pieces) == cjk
    assert all(estimate_text_tokens(p) <= 1024 for p in pieces)
    # as few pieces as the estimate allows: each full but the last
    assert len(pieces) == -(-estimate_text_tokens(cjk) // 1024)
    # One paragraph of many words: cut between words, each chunk filled close to the limit.
    words = [f"w{i}" for i in range(6000)]
    chunks = split_text(" ".join(words), max_tokens=100)
    assert " ".join(chunks).split() == words
    assert all(estimate_text_tokens(c) <= 100 for c in chunks)
    assert all(
        estimate_text_tokens(f"{c} {n.split()[0]}") > 100 for c, n in itertools.pairwise(chunks)
    )


def test_rows_lost_in_flight_are_sent_again_and_only_they(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    # What a kill leaves: the rows of the requests that had not finished are not there.
    lost = str((samples / "images" / "blue-square.png").resolve())
    IndexTable.open(out).delete_ids([lost])
    assert lost not in index_rows(out)
    sent = len(fake.parts)
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0
    assert len(fake.parts) == sent + 1 and "image" in fake.parts[-1]
    assert f"already in {out}: 11" in stdout
    assert lost in index_rows(out) and len(index_rows(out)) == 12


def test_a_failed_chunk_keeps_what_finished_and_a_rerun_sends_only_the_rest(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    fake.fail = lambda number, contents: (
        error(503, "busy", "ServiceUnavailable") if number == 3 else None
    )
    code, stdout, err = run(
        capsys, "embed", samples, "--out", out, "--chunk-size", "4", "--max-concurrency", "1"
    )
    assert code == 4 and "busy" in err
    saved = set(index_rows(out))
    assert 0 < len(saved) < 12
    # The summary still says what the index holds and what it cost.
    assert f"embedded {len(saved)} items" in stdout and "usage:" in stdout
    first_parts = len(fake.parts)

    fake.fail = None
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0
    assert f"already in {out}: {len(saved)}" in stdout
    assert len(fake.parts) - first_parts == 12 - len(saved)  # nothing sent twice
    assert len(index_rows(out)) == IndexTable.open(out).count() == 12


@pytest.mark.parametrize("chunk_size", ["64", "1"])
def test_on_error_skip_isolates_a_refused_part(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path, chunk_size: str
) -> None:
    poison = "The recipe needs two cups of flour, one egg and a pinch of salt."

    def moderate(number: int, contents: list[Any]) -> httpx.Response | None:
        if {"text": poison} in contents:
            return error(400, "input refused by moderation", "DataInspectionFailed")
        return None

    fake.fail = moderate
    out = tmp_path / "index"
    code, stdout, err = run(capsys, "embed", samples, "--out", out, "--chunk-size", chunk_size)
    assert code == 4  # something failed, and it was the service that refused it
    ids = set(index_rows(out))
    assert len(ids) == 11
    assert str((samples / "texts" / "text-4.txt").resolve()) not in ids
    assert "skipped" in err and "text-4.txt" in err and "moderation" in err
    assert "failed: 1" in stdout


def test_on_error_stop_stops_at_a_refused_part(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    fake.fail = lambda number, contents: error(400, "bad part")
    code, _, err = run(capsys, "embed", samples, "--out", tmp_path / "i", "--on-error", "stop")
    assert code == 4
    assert err.startswith("error: bad part")


def test_a_corrupt_image_is_skipped_and_reported(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    # A GIF must be re-encoded before sending, so the client finds out it cannot be decoded.
    (samples / "images" / "broken.gif").write_bytes(b"GIF89a" + b"garbage" * 10)
    out = tmp_path / "index"
    code, stdout, err = run(capsys, "embed", samples, "--out", out)
    assert code == 3
    assert "embedded 12 items" in stdout and "failed: 1" in stdout
    assert "broken.gif" in err and "cannot be decoded" in err
    assert len(index_rows(out)) == 12
    assert fake.parts and all("garbage" not in json.dumps(p) for p in fake.parts)
    code, _, err = run(capsys, "embed", samples, "--out", out, "--on-error", "stop")
    assert code == 3 and err.count("\n") == 1 and "broken.gif" in err


def test_an_index_of_another_model_is_refused(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    assert run(capsys, "embed", samples / "texts", "--out", out)[0] == 0
    sent = fake.requests
    code, _, err = run(
        capsys, "embed", samples, "--out", out, "--model", "tongyi-embedding-vision-plus"
    )
    assert code == 3
    assert "tongyi-embedding-vision-flash" in err and "--model" in err
    assert fake.requests == sent


def test_an_interrupt_request_stops_after_the_requests_in_flight_and_keeps_them(
    fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    collected = collect_items([samples / "texts"])  # six texts: one request per call of two
    asked = threading.Event()
    original = fake.handler

    def handler(request: httpx.Request) -> httpx.Response:
        response = original(request)
        asked.set()  # Ctrl-C while the first request is answered
        return response

    http = httpx.Client(transport=httpx.MockTransport(handler))
    table = IndexTable.create(out, IndexInfo("tongyi-embedding-vision-flash", 768, "openai"))
    with Client(api_key="sk", http_client=http) as client:
        writer = RowWriter(table)
        embedder = Embedder(client, writer, chunk_size=2, should_stop=asked.is_set)
        run_ = embedder.embed(collected.items)
        writer.close()
    assert run_.stopped
    # The third call never starts; the one or two in flight finish and are kept.
    assert run_.embedded_total in (2, 4)
    assert fake.requests == run_.embedded_total // 2
    assert writer.written == IndexTable.open(out).count() == run_.embedded_total


def test_videos_without_the_video_extra_are_skipped_not_fatal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tongyi_vision.cli import items

    monkeypatch.setattr(items, "video_decoding_available", lambda: False)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    (tmp_path / "note.txt").write_text("a note")
    collected = collect_items([tmp_path])
    assert [i.kind for i in collected.items] == ["text"]
    [failure] = collected.failures
    assert failure.id.endswith("clip.mp4") and "tongyi-vision[video]" in str(failure.error)


def test_files_in_folders_that_are_not_media_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.csv").write_text("x,y")
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "empty.md").write_text("\n\n")
    collected = collect_items([tmp_path])
    assert [i.id for i in collected.items] == [str((tmp_path / "a.txt").resolve())]
    assert collected.ignored == [str((tmp_path / "b.csv").resolve())]
    assert [f.id for f in collected.failures] == [str((tmp_path / "empty.md").resolve())]


# --- search ---


@pytest.fixture
def index_file(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> Path:
    out = tmp_path / "index"
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    return out


def test_search_ranks_the_exact_text_first(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path
) -> None:
    query = "Blue ocean waves roll onto a quiet sandy beach."
    code, out, _ = run(capsys, "search", index_file, query, "-k", "3")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("  1. +1.0000  text") and "text-2.txt" in lines[0]
    assert query in lines[0]  # a text's hit quotes it
    assert fake.parts[-1] == {"text": query}


def test_search_by_image_as_json(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path, samples: Path
) -> None:
    image = samples / "images" / "green-triangle.png"
    code, out, _ = run(capsys, "search", index_file, "--image", image, "-k", "2", "--json")
    assert code == 0
    hits = json.loads(out)
    assert [h["rank"] for h in hits] == [1, 2]
    assert set(hits[0]) == {"rank", "score", "id", "source", "kind", "content", "metadata"}
    assert hits[0]["id"] == hits[0]["source"] == str(image.resolve())
    assert hits[0]["score"] == pytest.approx(1.0)
    assert hits[0]["content"] == image.resolve().as_uri()
    assert hits[0]["kind"] == "image" and hits[0]["metadata"]["mime_type"] == "image/png"
    assert hits[0]["score"] >= hits[1]["score"]


def test_search_where_filters_before_ranking(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path
) -> None:
    query = "Blue ocean waves roll onto a quiet sandy beach."
    code, out, _ = run(capsys, "search", index_file, query, "--where", "kind = 'image'", "--json")
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 5 and {h["kind"] for h in hits} == {"image"}
    code, out, _ = run(
        capsys, "search", index_file, query, "--where", "source LIKE '%text-2%'", "-k", "9"
    )
    assert code == 0 and len(out.splitlines()) == 1 and "text-2.txt" in out


def test_a_filter_that_matches_nothing_or_is_no_sql_sends_nothing(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path
) -> None:
    sent = fake.requests
    code, out, err = run(capsys, "search", index_file, "a cat", "--where", "kind = 'audio'")
    assert code == 0 and out == "" and "no rows match --where" in err
    code, out, _ = run(capsys, "search", index_file, "a cat", "--where", "kind = 'x'", "--json")
    assert code == 0 and json.loads(out) == []
    for bad in ("kind = 'image", "colour = 'red'", "kind ==== 1"):
        code, out, err = run(capsys, "search", index_file, "a cat", "--where", bad)
        assert code == 3 and out == ""
        assert err.count("\n") == 1 and repr(bad) in err and "not a valid LanceDB SQL filter" in err
    assert fake.requests == sent  # nothing was paid for a query with no rows to rank


def test_search_errors(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "search", tmp_path / "missing", "x")
    assert code == 3 and "no such index" in err and "tongyi-vision embed" in err
    old = tmp_path / "old.jsonl"
    old.write_text('{"type":"header","format":"tongyi-vision-index","version":1}\n')
    code, _, err = run(capsys, "search", old, "x")
    assert code == 3 and "tongyi-vision import" in err
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"hello": 1}\n')
    code, _, err = run(capsys, "search", bogus, "x")
    assert code == 3 and "is a file, not an index" in err
    code, _, err = run(capsys, "search", tmp_path, "x")
    assert code == 3 and "holds no tongyi-vision index" in err
    code, _, err = run(capsys, "search", index_file, "--image", tmp_path / "nope.png")
    assert code == 3 and "nope.png" in err
    assert err.count("\n") == 1
    empty = tmp_path / "empty"
    IndexTable.create(empty, IndexInfo("tongyi-embedding-vision-flash", 768, "openai"))
    sent = fake.requests
    code, _, err = run(capsys, "search", empty, "x")
    assert code == 3 and "holds no items yet" in err and fake.requests == sent


def test_search_uses_the_model_of_the_index(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    table = IndexTable.create(out, IndexInfo("tongyi-embedding-vision-plus", 1152, "openai"))
    table.add([Row(id="a", source="a", kind="text", sha256="0", content="a", vector=[1.0] * 1152)])
    seen: list[str] = []
    original = fake.handler

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["model"])
        return original(request)

    fake.handler = spy  # type: ignore[method-assign]
    # The fake answers 768 numbers: a plus client refuses them, proving it asked for plus.
    code, _, err = run(capsys, "search", out, "x")
    assert seen == ["tongyi-embedding-vision-plus"]
    assert code == 4 and "1152" in err


def test_item_ids_are_stable_across_working_directories(
    samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = [i.id for i in collect_items([samples]).items]
    monkeypatch.chdir(samples)
    second: list[Item] = collect_items(["."]).items
    assert [i.id for i in second] == first


def test_a_small_ann_threshold_waits_for_rows_enough_to_train_on(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    code, stdout, err = run(capsys, "embed", samples, "--out", out, "--ann-threshold", "10")
    assert code == 0, err
    assert "embedded 12 items" in stdout and "ANN" not in err
    assert not IndexTable.open(out).has_ann()
