"""The index's LanceDB table (``IndexTable``), and moving its rows to and from files: the JSONL
index of earlier versions read by ``import``, and ``export`` to JSONL and Parquet."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests._cli_fakes import Fake, index_rows, run
from tongyi_vision.cli.jsonl import read_jsonl
from tongyi_vision.index import (
    IndexBusyError,
    IndexInfo,
    IndexTable,
    NotAnIndexError,
    Row,
    WriteLock,
)
from tongyi_vision.index.schema import SCHEMA_KEY
from tongyi_vision.wire.errors import InputError

FLASH = "tongyi-embedding-vision-flash"


def vector(seed: int, dimension: int = 8) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(dimension)]


def image_row(number: int, dimension: int = 8, sha: str = "a" * 64) -> Row:
    path = f"/photos/img{number:05}.jpg"
    return Row(
        id=path,
        source=path,
        kind="image",
        sha256=sha,
        content="file://" + path,
        vector=vector(number, dimension),
        metadata={"file_name": f"img{number:05}.jpg", "mime_type": "image/jpeg", "bytes": 1234},
    )


@pytest.fixture
def table(tmp_path: Path) -> IndexTable:
    made = IndexTable.create(tmp_path / "index", IndexInfo(FLASH, 8, "openai", 4.0))
    made.add([image_row(n) for n in range(10)])
    made.add(
        [
            Row(
                "/notes/a.md#chunk=0",
                "/notes/a.md",
                "text",
                "b" * 64,
                "a red bicycle",
                vector(100),
                {"chunk": 0, "chunks": 2},
            ),
            Row(
                "/v.mp4#t=0,4",
                "/v.mp4",
                "video",
                "c" * 64,
                "file:///v.mp4#t=0,4",
                vector(101),
                {"duration": 4.0},
                0.0,
                4.0,
            ),
        ]
    )
    return made


# --- the table ---


def test_settings_live_in_the_schema_metadata_and_survive_compaction(
    table: IndexTable, tmp_path: Path
) -> None:
    import lancedb

    table.upsert([image_row(3, sha="d" * 64)])
    table.compact()
    raw = lancedb.connect(tmp_path / "index").open_table("items")
    settings = json.loads(raw.schema.metadata[SCHEMA_KEY.encode()])
    assert {k: settings[k] for k in ("model", "dimension", "dialect", "clip_seconds")} == {
        "model": FLASH,
        "dimension": 8,
        "dialect": "openai",
        "clip_seconds": 4.0,
    }
    assert raw.count_rows() == 12
    assert str(raw.schema.field("vector").type) == "fixed_size_list<item: float>[8]"
    reopened = IndexTable.open(tmp_path / "index")
    assert reopened.info == table.info


def test_get_state_count_and_rows_as_written(table: IndexTable) -> None:
    assert table.count() == 12
    assert table.count("kind = 'image'") == 10
    state = table.state()
    assert state["/v.mp4#t=0,4"] == ("/v.mp4", "c" * 64)
    [clip, text, missing] = [*table.get(["/v.mp4#t=0,4", "/notes/a.md#chunk=0"]), None]
    assert missing is None
    assert (clip.start_seconds, clip.end_seconds, clip.kind) == (0.0, 4.0, "video")
    assert clip.document_metadata()["start_seconds"] == 0.0
    assert text.content == "a red bicycle" and text.metadata == {"chunk": 0, "chunks": 2}
    assert text.vector == ()  # left out unless asked for
    [with_vector] = table.get(["/notes/a.md#chunk=0"], vectors=True)
    assert with_vector.vector == pytest.approx(vector(100), abs=1e-6)


def test_search_is_by_cosine_best_first_and_filters_first(table: IndexTable) -> None:
    hits = table.search(vector(7), 3)
    assert hits[0].row.id == "/photos/img00007.jpg" and hits[0].score == pytest.approx(1.0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Cosine: a vector scaled by 3 is as near as itself.
    assert table.search([3 * x for x in vector(7)], 1)[0].score == pytest.approx(1.0)
    only_text = table.search(vector(7), 5, where="kind = 'text'")
    assert [h.row.id for h in only_text] == ["/notes/a.md#chunk=0"]
    assert table.search(vector(7), 5, where="kind = 'audio'") == []
    with pytest.raises(InputError, match="the filter 'kind = ' is not a valid"):
        table.search(vector(7), 5, where="kind = ")
    with pytest.raises(InputError, match="8-dimensional"):
        table.search([1.0, 2.0], 5)


def test_exact_search_in_memory_agrees_with_lancedb_and_follows_commits(tmp_path: Path) -> None:
    # Below MEMORY_SEARCH_ROWS the vectors are searched in memory; LanceDB's own flat search
    # (taken here on the raw table) must rank and score the same, filters included.
    table = IndexTable.create(tmp_path / "index", IndexInfo(FLASH, 8, "openai"))
    table.add([image_row(n) for n in range(300)])
    raw = table._table
    table.search(vector(1), 1)  # the first search is LanceDB's own; the vectors are held after
    assert table._held is None
    for seed in (3, 50, 999):
        query = vector(seed)
        for where in (None, "source LIKE '/photos/img000%'"):
            ours = table.search(query, 7, where=where)
            builder = raw.search(query, vector_column_name="vector").distance_type("cosine")
            if where:
                builder = builder.where(where, prefilter=True)
            theirs = builder.limit(7).select(["id"]).to_arrow()
            assert [h.row.id for h in ours] == theirs.column("id").to_pylist()
            expected = [1 - d for d in theirs.column("_distance").to_pylist()]
            assert [h.score for h in ours] == pytest.approx(expected, abs=1e-5)
    assert table._held is not None and len(table._held.row_ids) == 300
    # A commit (here a delete and an add) is seen by the next search.
    table.delete("id = '/photos/img00003.jpg'")
    assert table.search(vector(3), 1)[0].row.id != "/photos/img00003.jpg"
    table.add([image_row(100_000)])
    assert table.search(vector(100_000), 1)[0].row.id == "/photos/img100000.jpg"
    hit = table.search(vector(42), 1, vectors=True)[0]
    assert list(hit.row.vector) == pytest.approx(vector(42))


def test_upsert_and_delete_stale_replace_rows(table: IndexTable) -> None:
    table.upsert([image_row(1, sha="e" * 64), image_row(50)])
    assert table.count() == 13
    assert table.state()["/photos/img00001.jpg"][1] == "e" * 64
    table.delete_stale([("/photos/img00002.jpg", "a" * 64), ("/v.mp4", "f" * 64)])
    assert "/photos/img00002.jpg" in table.state()  # same digest: kept
    assert "/v.mp4#t=0,4" not in table.state()  # another digest: gone
    table.delete_ids(["/photos/img00050.jpg", "nope"])
    assert table.count() == 11
    with pytest.raises(ValueError, match="has a vector of 3 numbers"):
        table.add([Row("x", "x", "text", "0", "x", [1.0, 2.0, 3.0])])


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with WriteLock(tmp_path / "index") as first:
        assert first.held
        with pytest.raises(IndexBusyError, match="being written by another"):
            WriteLock(tmp_path / "index").acquire()
    with WriteLock(tmp_path / "index") as again:  # free once released
        assert again.held


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such index"),
        ("file", "is a file, not an index"),
        ("folder", "holds no tongyi-vision index"),
        ("empty", "holds no index yet"),
        ("theirs", "did not make"),
        ("newer", "version 99"),
    ],
)
def test_what_is_not_an_index_is_named(tmp_path: Path, setup: str, message: str) -> None:
    import lancedb

    path = tmp_path / "index"
    if setup == "file":
        path.write_text("x")
    elif setup == "folder":
        path.mkdir()
        (path / "a.txt").write_text("x")
    elif setup == "empty":
        path.mkdir()
    elif setup in ("theirs", "newer"):
        metadata = {}
        if setup == "newer":
            metadata = {SCHEMA_KEY: json.dumps({"format": "tongyi-vision-index", "version": 99})}
        pa = pytest.importorskip("pyarrow")
        schema = pa.schema([pa.field("id", pa.string())], metadata=metadata)
        lancedb.connect(path).create_table("items", schema=schema)
    with pytest.raises(NotAnIndexError, match=message) as raised:
        IndexTable.open(path)
    assert str(path) in str(raised.value)


def test_a_768_dimension_row_takes_at_most_3_5_kb_on_disk_after_compaction(
    tmp_path: Path,
) -> None:
    made = IndexTable.create(tmp_path / "index", IndexInfo(FLASH, 768, "openai"))
    rows = 1500
    for start in range(0, rows, 100):  # many commits, as an embed run makes
        made.add([image_row(n, 768, sha=f"{n:064x}") for n in range(start, start + 100)])
    made.compact()
    size = sum(f.stat().st_size for f in (tmp_path / "index").rglob("*") if f.is_file())
    assert size / rows <= 3.5 * 1024
    assert len(list((tmp_path / "index" / "items.lance" / "data").iterdir())) == 1


# --- import of a JSONL index of an earlier version ---


def header(**changes: Any) -> dict[str, Any]:
    return {
        "type": "header",
        "format": "tongyi-vision-index",
        "version": 1,
        "model": FLASH,
        "dimension": 8,
        "dialect": "openai",
        "clip_seconds": 10.0,
        "created": "2025-01-01T00:00:00+00:00",
        **changes,
    }


def item(item_id: str, seed: int, sha: str = "1" * 64, **metadata: Any) -> dict[str, Any]:
    kind = "text" if "text" in metadata else "video" if "start_seconds" in metadata else "image"
    return {
        "type": "item",
        "id": item_id,
        "source": item_id.split("#")[0],
        "kind": kind,
        "sha256": sha,
        "metadata": metadata,
        "vector": vector(seed),
    }


def write_lines(path: Path, *records: Any, tail: bytes = b"") -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_bytes("".join(line + "\n" for line in lines).encode() + tail)
    return path


def test_import_reads_an_old_jsonl_index(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = write_lines(
        tmp_path / "old.jsonl",
        header(clip_seconds=3.0),
        item("/n/a.txt", 1, text="first words"),
        item("/p/cat.png", 2, mime_type="image/png"),
        item("/n/a.txt", 3, text="later words"),  # a later record of an id wins
        "{not json",
        {**item("/p/x.png", 4), "vector": [1.0, 2.0]},
        item("/v.mp4#t=0,3", 5, start_seconds=0.0, end_seconds=3.0),
        item("/p/gone.png", 6, sha="old"),
        item("/p/gone.png", 7, sha="new", mime_type="image/png"),
        tail=json.dumps(item("/p/torn.png", 8)).encode()[:40],  # killed while writing it
    )
    code, out, err = run(capsys, "import", old, "--out", tmp_path / "index")
    assert code == 0, err
    assert "imported 4 rows" in out and "skipped 2 damaged line(s)" in out
    assert "line 5 is not JSON" in err and "line 6 has a vector of 2 values" in err
    assert str(old) in err
    table = IndexTable.open(tmp_path / "index")
    assert (table.info.model, table.info.dimension, table.info.clip_seconds) == (FLASH, 8, 3.0)
    rows = index_rows(tmp_path / "index")
    assert sorted(rows) == ["/n/a.txt", "/p/cat.png", "/p/gone.png", "/v.mp4#t=0,3"]
    assert rows["/n/a.txt"].content == "later words" and "text" not in rows["/n/a.txt"].metadata
    assert rows["/n/a.txt"].vector == pytest.approx(vector(3), abs=1e-6)
    assert rows["/p/cat.png"].content == "file:///p/cat.png"
    clip = rows["/v.mp4#t=0,3"]
    assert (clip.start_seconds, clip.end_seconds, clip.content) == (0.0, 3.0, "file:///v.mp4#t=0,3")
    assert rows["/p/gone.png"].sha256 == "new"


def test_read_jsonl_refuses_what_is_no_jsonl_index(tmp_path: Path) -> None:
    with pytest.raises(NotAnIndexError, match="header"):
        read_jsonl(write_lines(tmp_path / "a.jsonl", {"hello": 1}))
    with pytest.raises(NotAnIndexError, match="version 7"):
        read_jsonl(write_lines(tmp_path / "b.jsonl", header(version=7)))
    with pytest.raises(NotAnIndexError, match="not even its header"):
        read_jsonl(write_lines(tmp_path / "c.jsonl", tail=b'{"type": "hea'))


def test_import_into_an_index_of_other_settings_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    IndexTable.create(tmp_path / "index", IndexInfo(FLASH, 16, "openai"))
    old = write_lines(tmp_path / "old.jsonl", header(), item("/p/cat.png", 2))
    code, _, err = run(capsys, "import", old, "--out", tmp_path / "index")
    assert code == 3 and "vector size is 8" in err and "another --out" in err
    assert IndexTable.open(tmp_path / "index").count() == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("mine")
    code, _, err = run(capsys, "import", old, "--out", tmp_path / "other")
    assert code == 3 and "new or empty folder" in err
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["a.txt"]


# --- export, and back ---


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_then_import_gives_the_same_rows_and_vectors(
    capsys: pytest.CaptureFixture[str], table: IndexTable, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"rows{suffix}"
    code, out, err = run(capsys, "export", table.path, "--to", target)
    assert code == 0, err
    assert f"exported 12 rows of {table.path} to {target}" in out
    assert not target.with_name(target.name + ".partial").exists()
    code, out, err = run(capsys, "import", target, "--out", tmp_path / "copy")
    assert code == 0, err
    assert "imported 12 rows" in out
    before, after = index_rows(table.path), index_rows(tmp_path / "copy")
    assert after == before  # every column, the metadata object and the float32 vectors
    assert IndexTable.open(tmp_path / "copy").info.clip_seconds == 4.0
    # Importing it again replaces rows rather than adding a second copy.
    assert run(capsys, "import", target, "--out", tmp_path / "copy")[0] == 0
    assert IndexTable.open(tmp_path / "copy").count() == 12


def test_a_parquet_export_holds_the_settings_and_a_filter_picks_rows(
    capsys: pytest.CaptureFixture[str], table: IndexTable, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "images.parquet"
    code, _, err = run(capsys, "export", table.path, "--to", target, "--where", "kind = 'image'")
    assert code == 0, err
    data = pq.read_table(target)
    assert data.num_rows == 10 and set(data.column("kind").to_pylist()) == {"image"}
    settings = json.loads(data.schema.metadata[SCHEMA_KEY.encode()])
    assert (settings["model"], settings["dimension"], settings["dialect"]) == (FLASH, 8, "openai")
    assert settings["clip_seconds"] == 4.0
    assert data.column_names == [
        "id",
        "source",
        "kind",
        "sha256",
        "start_seconds",
        "end_seconds",
        "content",
        "metadata",
        "vector",
    ]
    code, _, err = run(capsys, "export", table.path, "--to", target, "--where", "kind = ")
    assert code == 3 and "'kind = '" in err
    assert pq.read_table(target).num_rows == 10  # the earlier export is left whole


def test_a_jsonl_export_is_the_old_format(
    capsys: pytest.CaptureFixture[str], table: IndexTable, tmp_path: Path
) -> None:
    target = tmp_path / "rows.jsonl"
    assert run(capsys, "export", table.path, "--to", target)[0] == 0
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["version"] == 1
    assert (lines[0]["model"], lines[0]["dimension"], lines[0]["clip_seconds"]) == (FLASH, 8, 4.0)
    text = next(r for r in lines[1:] if r["kind"] == "text")
    assert text["metadata"]["text"] == "a red bicycle" and len(text["vector"]) == 8
    clip = next(r for r in lines[1:] if r["kind"] == "video")
    assert (clip["metadata"]["start_seconds"], clip["metadata"]["end_seconds"]) == (0.0, 4.0)


def test_index_command_needs_enough_rows(
    capsys: pytest.CaptureFixture[str], table: IndexTable, fake: Fake
) -> None:
    code, out, err = run(capsys, "index", table.path)
    assert code == 3 and out == ""
    assert "holds 12 rows; an ANN index needs 5,000" in err and str(table.path) in err
