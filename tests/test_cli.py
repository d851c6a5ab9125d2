"""The ``tongyi-vision`` command: parsing, exit codes, error lines, the JSONL index and resuming.

The service is a fake behind ``httpx.MockTransport`` (sockets are blocked); the
command builds its client through ``common.make_client``, which the ``service`` fixture
replaces with one wired to the fake.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._cli_fakes import Fake, error, fake_vector, run
from tongyi_vision import Client, cli
from tongyi_vision.cli import app, common
from tongyi_vision.cli.embed import Embedder
from tongyi_vision.cli.index import Header, IndexWriter, read_index
from tongyi_vision.cli.items import Item, collect_items
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


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- parsing and usage errors ---


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "embed", "search", "serve"):
        assert command in out
    assert "exit codes" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["embed", "photos"],  # --out missing
        ["embed", "--out", "index.jsonl"],  # no PATH
        ["embed", "photos", "--out", "i.jsonl", "--on-error", "maybe"],
        ["embed", "photos", "--out", "i.jsonl", "--max-concurrency", "0"],
        ["embed", "photos", "--out", "i.jsonl", "--clip-seconds", "-1"],
        ["search", "index.jsonl"],  # neither a query nor --image
        ["search", "index.jsonl", "a cat", "--image", "cat.jpg"],
        ["search", "index.jsonl", "  "],
        ["search", "index.jsonl", "a cat", "-k", "0"],
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
            *("embed", "a", "b", "--out", "x.jsonl", "--model", "tongyi-embedding-vision-plus"),
            *("--dialect", "dashscope", "--dimension", "512", "--base-url", "http://127.0.0.1:9"),
            *("--max-concurrency", "3", "--clip-seconds", "2.5", "--on-error", "stop"),
        ]
    )
    assert args.paths == ["a", "b"]
    assert args.out == Path("x.jsonl")
    assert (args.model, args.dialect, args.dimension) == (
        "tongyi-embedding-vision-plus",
        "dashscope",
        512,
    )
    assert (args.base_url, args.max_concurrency) == ("http://127.0.0.1:9", 3)
    assert (args.clip_seconds, args.on_error, args.chunk_size) == (2.5, "stop", 64)


def test_help_imports_no_optional_dependency() -> None:
    code = (
        "import sys\n"
        "from tongyi_vision import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('langchain_core', 'llama_index', 'PIL', 'av', 'tqdm', 'uvicorn', 'starlette')\n"
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
    code, out, err = run(capsys, "embed", samples, "--out", tmp_path / "i.jsonl")
    assert code == common.EXIT_CONFIG == 5
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: no API key: set EMPIRIOLABS_API_KEY")
    assert "tongyi-vision demo" in err
    assert not (tmp_path / "i.jsonl").exists()


def test_empty_api_key_counts_as_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "")
    code, _, err = run(capsys, "search", tmp_path / "none.jsonl", "cat")
    # A missing index is found before the key is needed: input error first.
    assert code == 3
    code, _, err = run(capsys, "embed", tmp_path, "--out", tmp_path / "i.jsonl")
    assert code == 5
    assert "EMPIRIOLABS_API_KEY" in err


def test_dashscope_dialect_names_its_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "embed", tmp_path, "--out", tmp_path / "i.jsonl", "--dialect", "dashscope"
    )
    assert code == 5
    assert "set DASHSCOPE_API_KEY" in err


def test_missing_path_exits_3(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "embed", tmp_path / "nope", "--out", tmp_path / "i.jsonl")
    assert code == common.EXIT_INPUT == 3
    assert err.count("\n") == 1
    assert "nope" in err and "no such file or folder" in err
    assert fake.requests == 0


def test_a_named_file_of_another_kind_exits_3(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 not media")
    code, _, err = run(capsys, "embed", tmp_path / "report.pdf", "--out", tmp_path / "i.jsonl")
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
    exit_code, _, err = run(capsys, "embed", samples, "--out", tmp_path / "i.jsonl")
    assert exit_code == common.EXIT_API == 4
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the provider says no")
    assert remedy in lines[0]


def test_an_index_that_cannot_be_written_exits_3(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    code, _, err = run(capsys, "embed", samples, "--out", folder)
    assert code == 3
    assert err.count("\n") == 1 and "taken" in err
    assert fake.requests == 0


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


def test_embed_writes_a_header_and_one_record_per_item(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    code, stdout, _ = run(capsys, "embed", samples, "--out", out, "--no-progress")
    assert code == 0
    lines = records(out)
    header, items = lines[0], lines[1:]
    assert header["type"] == "header" and header["format"] == "tongyi-vision-index"
    assert (header["model"], header["dimension"], header["dialect"]) == (
        "tongyi-embedding-vision-flash",
        768,
        "openai",
    )
    assert len(items) == 12
    assert {r["kind"] for r in items} == {"text", "image"}
    ids = [r["id"] for r in items]
    assert len(set(ids)) == len(ids)
    for record in items:
        assert set(record) == {"type", "id", "source", "kind", "sha256", "metadata", "vector"}
        assert Path(record["source"]).is_absolute()
        assert len(record["vector"]) == 768
    red = next(r for r in items if r["id"].endswith("red-circle.png"))
    assert red["metadata"]["mime_type"] == "image/png"
    assert (red["metadata"]["width"], red["metadata"]["height"]) == (64, 64)
    text = next(r for r in items if r["id"].endswith("text-1.txt"))
    assert text["metadata"]["text"].startswith("A red bicycle")
    # The vector stored is the one the service answered for that very part.
    assert text["vector"] == fake_vector({"text": text["metadata"]["text"]})
    assert "embedded 12 items (6 text, 6 image)" in stdout
    assert "failed: 0" in stdout and "usage: 60 tokens" in stdout


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that tqdm draws its bar."""

    def isatty(self) -> bool:
        return True


def test_a_progress_bar_runs_on_a_terminal_and_not_in_a_log(
    monkeypatch: pytest.MonkeyPatch, fake: Fake, samples: Path, tmp_path: Path
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert (
        cli.main(["embed", str(samples), "--out", str(tmp_path / "a.jsonl"), "--chunk-size", "5"])
        == 0
    )
    assert "embed: 100%" in terminal.getvalue() and "12/12" in terminal.getvalue()

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert cli.main(["embed", str(samples), "--out", str(tmp_path / "b.jsonl")]) == 0
    assert log.getvalue() == ""

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert (
        cli.main(["embed", str(samples), "--out", str(tmp_path / "c.jsonl"), "--no-progress"]) == 0
    )
    assert terminal.getvalue() == ""


def test_rerun_sends_nothing_and_changed_files_are_sent_again(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    sent = len(fake.parts)
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0
    assert len(fake.parts) == sent
    assert "embedded 0 items" in stdout and "already in" in stdout and ": 12" in stdout
    assert "0 requests" in stdout

    (samples / "texts" / "text-2.txt").write_text("Something else entirely.\n")
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert fake.parts[sent:] == [{"text": "Something else entirely."}]
    index = read_index(out)
    assert len(index.records) == 12
    changed = index.records[str((samples / "texts" / "text-2.txt").resolve())]
    assert changed["metadata"]["text"] == "Something else entirely."


def test_an_index_keeps_its_dialect_and_vector_size(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    texts = samples / "texts"
    code, _, err = run(
        capsys, "embed", texts, "--out", out, "--dialect", "dashscope", "--dimension", "256"
    )
    assert code == 0, err
    header = records(out)[0]
    assert (header["dialect"], header["dimension"]) == ("dashscope", 256)
    assert all(len(r["vector"]) == 256 for r in records(out)[1:])

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
    out = tmp_path / "index.jsonl"
    code, _, err = run(capsys, "embed", samples / "texts", "--out", out, "--clip-seconds", "4")
    assert code == 0, err
    assert records(out)[0]["clip_seconds"] == 4.0
    assert read_index(out).header.clip_seconds == 4.0
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
    out = tmp_path / "index.jsonl"
    assert run(capsys, "embed", notes, "--out", out)[0] == 0
    chunks = records(out)[1:]
    assert len(chunks) > 1
    assert [c["id"] for c in chunks] == [f"{notes.resolve()}#chunk={i}" for i in range(len(chunks))]
    for chunk in chunks:
        assert estimate_text_tokens(chunk["metadata"]["text"]) <= 1024
    assert " ".join(c["metadata"]["text"] for c in chunks).split() == " ".join(paragraphs).split()


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


def test_a_torn_last_line_is_cut_and_the_item_sent_again(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    whole = out.read_bytes().splitlines(keepends=True)
    # Simulate a kill in the middle of writing the last record.
    out.write_bytes(b"".join(whole[:-1]) + whole[-1][: len(whole[-1]) // 2])
    lost = json.loads(whole[-1])["id"]
    assert lost not in read_index(out).records
    sent = len(fake.parts)
    assert run(capsys, "embed", samples, "--out", out)[0] == 0
    assert len(fake.parts) == sent + 1
    lines = records(out)  # every line parses: the torn one is gone
    assert [r["id"] for r in lines[1:]].count(lost) == 1
    assert len(lines) == 13


def test_a_failed_chunk_keeps_what_finished_and_a_rerun_sends_only_the_rest(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    fake.fail = lambda number, contents: (
        error(503, "busy", "ServiceUnavailable") if number == 3 else None
    )
    code, stdout, err = run(
        capsys, "embed", samples, "--out", out, "--chunk-size", "4", "--max-concurrency", "1"
    )
    assert code == 4 and "busy" in err
    saved = {r["id"] for r in records(out)[1:]}
    assert 0 < len(saved) < 12
    # The summary still says what the index holds and what it cost.
    assert f"embedded {len(saved)} items" in stdout and "usage:" in stdout
    first_parts = len(fake.parts)

    fake.fail = None
    code, stdout, _ = run(capsys, "embed", samples, "--out", out)
    assert code == 0
    assert f"already in {out}: {len(saved)}" in stdout
    assert len(fake.parts) - first_parts == 12 - len(saved)  # nothing sent twice
    ids = [r["id"] for r in records(out)[1:]]
    assert len(ids) == len(set(ids)) == 12


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
    out = tmp_path / "index.jsonl"
    code, stdout, err = run(capsys, "embed", samples, "--out", out, "--chunk-size", chunk_size)
    assert code == 4  # something failed, and it was the service that refused it
    ids = {r["id"] for r in records(out)[1:]}
    assert len(ids) == 11
    assert str((samples / "texts" / "text-4.txt").resolve()) not in ids
    assert "skipped" in err and "text-4.txt" in err and "moderation" in err
    assert "failed: 1" in stdout


def test_on_error_stop_stops_at_a_refused_part(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    fake.fail = lambda number, contents: error(400, "bad part")
    code, _, err = run(
        capsys, "embed", samples, "--out", tmp_path / "i.jsonl", "--on-error", "stop"
    )
    assert code == 4
    assert err.startswith("error: bad part")


def test_a_corrupt_image_is_skipped_and_reported(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    # A GIF must be re-encoded before sending, so the client finds out it cannot be decoded.
    (samples / "images" / "broken.gif").write_bytes(b"GIF89a" + b"garbage" * 10)
    out = tmp_path / "index.jsonl"
    code, stdout, err = run(capsys, "embed", samples, "--out", out)
    assert code == 3
    assert "embedded 12 items" in stdout and "failed: 1" in stdout
    assert "broken.gif" in err and "cannot be decoded" in err
    assert len(records(out)) == 13
    assert fake.parts and all("garbage" not in json.dumps(p) for p in fake.parts)
    code, _, err = run(capsys, "embed", samples, "--out", out, "--on-error", "stop")
    assert code == 3 and err.count("\n") == 1 and "broken.gif" in err


def test_an_index_of_another_model_is_refused(
    capsys: pytest.CaptureFixture[str], fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    assert run(capsys, "embed", samples / "texts", "--out", out)[0] == 0
    code, _, err = run(
        capsys, "embed", samples, "--out", out, "--model", "tongyi-embedding-vision-plus"
    )
    assert code == 3
    assert "tongyi-embedding-vision-flash" in err and "--model" in err


def test_an_interrupt_request_stops_after_the_chunk_in_flight(
    fake: Fake, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    collected = collect_items([samples])
    http = httpx.Client(transport=httpx.MockTransport(fake.handler))
    calls = 0

    def stop_after_two() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    with Client(api_key="sk", http_client=http) as client:
        writer = IndexWriter(out)
        writer.start(Header(client.model, 768, "openai"))
        run_ = Embedder(client, writer, chunk_size=5, should_stop=stop_after_two).embed(
            collected.items, None
        )
        writer.close()
    assert run_.stopped
    assert run_.embedded_total == 10
    assert len(read_index(out).records) == 10


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
    out = tmp_path / "index.jsonl"
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
    assert fake.parts[-1] == {"text": query}


def test_search_by_image_as_json(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path, samples: Path
) -> None:
    image = samples / "images" / "green-triangle.png"
    code, out, _ = run(capsys, "search", index_file, "--image", image, "-k", "2", "--json")
    assert code == 0
    hits = json.loads(out)
    assert [h["rank"] for h in hits] == [1, 2]
    assert hits[0]["id"] == str(image.resolve()) and hits[0]["score"] == pytest.approx(1.0)
    assert hits[0]["kind"] == "image" and hits[0]["metadata"]["mime_type"] == "image/png"
    assert hits[0]["score"] >= hits[1]["score"]


def test_search_errors(
    capsys: pytest.CaptureFixture[str], fake: Fake, index_file: Path, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "search", tmp_path / "missing.jsonl", "x")
    assert code == 3 and "tongyi-vision embed" in err
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"hello": 1}\n')
    code, _, err = run(capsys, "search", bogus, "x")
    assert code == 3 and "header" in err
    code, _, err = run(capsys, "search", index_file, "--image", tmp_path / "nope.png")
    assert code == 3 and "nope.png" in err
    assert err.count("\n") == 1


def test_search_uses_the_model_of_the_index(
    capsys: pytest.CaptureFixture[str], fake: Fake, tmp_path: Path
) -> None:
    out = tmp_path / "index.jsonl"
    header = Header("tongyi-embedding-vision-plus", 1152, "openai")
    writer = IndexWriter(out)
    writer.start(header)
    writer.append(
        [
            {
                "type": "item",
                "id": "a",
                "source": "a",
                "kind": "text",
                "sha256": "0",
                "metadata": {},
                "vector": [1.0] * 1152,
            }
        ]
    )
    writer.close()
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
