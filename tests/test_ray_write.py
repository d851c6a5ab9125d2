"""How the rows of a Ray dataset become rows of the CLI's index (``write_index``'s
conversion, pure), how the vectors are read back from Arrow (nulls and slices), and the
command line's ``--ray``; no Ray runs."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tongyi_vision import APIError, InputError
from tongyi_vision.cli.app import build_parser
from tongyi_vision.cli.embed import _tongyi_error
from tongyi_vision.ray._batches import vector_array
from tongyi_vision.ray._write import RowColumns, _vectors, batch_columns, index_rows

# By name: pyarrow and pandas ship no type hints.
pa: Any = importlib.import_module("pyarrow")


def columns(**values: list[Any]) -> dict[str, list[Any]]:
    size = len(next(iter(values.values())))
    values.setdefault("vector", [np.ones(2, dtype=np.float32)] * size)
    return values


def test_a_media_row_gets_its_reference_and_source_from_its_path() -> None:
    rows, skipped = index_rows(
        columns(path=["/photos/cat.png", "https://cdn.test/dog.jpg"]),
        RowColumns(id="path", default_kind="image"),
    )
    assert skipped == 0
    cat, dog = rows
    assert (cat.id, cat.kind, cat.content, cat.source) == (
        "/photos/cat.png",
        "image",
        "file:///photos/cat.png",
        "/photos/cat.png",
    )
    assert (dog.content, dog.source) == ("https://cdn.test/dog.jpg", "https://cdn.test/dog.jpg")
    assert cat.sha256 == "" and cat.metadata == {} and list(cat.vector) == [1.0, 1.0]


def test_a_clip_row_gets_its_time_range_from_its_reference() -> None:
    rows, _ = index_rows(columns(id=["/v/talk.mp4#t=10,20"], kind=["video"]), RowColumns())
    clip = rows[0]
    assert clip.content == "file:///v/talk.mp4#t=10,20"
    assert (clip.start_seconds, clip.end_seconds) == (10.0, 20.0)
    assert clip.source == "/v/talk.mp4"


def test_the_rows_own_columns_are_taken_as_they_are_and_metadata_columns_added() -> None:
    rows, _ = index_rows(
        columns(
            id=["doc-1"],
            kind=["text"],
            text=["a red bicycle"],
            source=["/notes/bikes.md"],
            sha256=["abc"],
            metadata=['{"chunk": 0}'],
            label=["bikes"],
        ),
        RowColumns(content="text", metadata=("label",)),
    )
    row = rows[0]
    assert (row.content, row.source, row.sha256) == ("a red bicycle", "/notes/bikes.md", "abc")
    assert row.metadata == {"chunk": 0, "label": "bikes"}
    dict_meta, _ = index_rows(
        columns(id=["x"], kind=["text"], content=["t"], metadata=[{"a": 1}]), RowColumns()
    )
    assert dict_meta[0].metadata == {"a": 1}


def test_rows_without_a_vector_are_left_out_and_counted() -> None:
    values = columns(id=["a", "b", "c"], kind=["text"] * 3, content=["x", "y", "z"])
    values["vector"] = [np.ones(2), None, np.ones(2)]
    rows, skipped = index_rows(values, RowColumns())
    assert [r.id for r in rows] == ["a", "c"] and skipped == 1


@pytest.mark.parametrize(
    ("values", "names", "message"),
    [
        (columns(path=["/a.png"]), RowColumns(default_kind="image"), "no id column 'id'"),
        (columns(id=["/a.png"]), RowColumns(), "has no kind"),
        (columns(id=["/a.png"], kind=["audio"]), RowColumns(), "kind 'audio'"),
        (columns(id=["n1"], kind=["text"]), RowColumns(), "without its text"),
        (columns(id=[None], kind=["text"]), RowColumns(), "no id"),
        (
            columns(id=["n1"], kind=["text"], content=["t"], metadata=["[1]"]),
            RowColumns(),
            "not a JSON object",
        ),
    ],
)
def test_what_a_row_lacks_is_said_naming_it(
    values: dict[str, list[Any]], names: RowColumns, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        index_rows(values, names)


def test_a_dataset_without_vectors_is_refused() -> None:
    with pytest.raises(InputError, match="no 'vector' column"):
        index_rows({"id": ["a"]}, RowColumns())


def test_vectors_are_read_back_from_arrow_with_their_nulls_and_slices() -> None:
    array = vector_array([[1.0, 2.0], None, [5.0, 6.0], [7.0, 8.0]], 2)
    table = pa.table({"id": ["a", "b", "c", "d"], "vector": array})
    read = batch_columns(table.slice(1, 3))
    assert read["id"] == ["b", "c", "d"]
    assert read["vector"][0] is None
    assert [list(v) for v in read["vector"][1:]] == [[5.0, 6.0], [7.0, 8.0]]
    loose = pa.chunked_array([pa.array([[1.0], None], type=pa.list_(pa.float32()))])
    assert [None if v is None else list(v) for v in _vectors(loose)] == [[1.0], None]


def test_embed_takes_ray_with_or_without_an_address(tmp_path: Path) -> None:
    parser = build_parser()
    common = ["embed", str(tmp_path), "--out", str(tmp_path / "i")]
    assert parser.parse_args(common).ray is None
    assert parser.parse_args([*common, "--ray"]).ray == ""
    assert parser.parse_args([*common, "--ray", "ray://head:10001"]).ray == "ray://head:10001"


def test_the_error_of_ours_is_found_inside_rays_wrappers() -> None:
    ours = APIError("the service failed", status=503)

    class TaskError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("task failed")
            self.cause = cause

    try:
        try:
            raise TaskError(ours)
        except TaskError as inner:
            raise RuntimeError("the dataset failed") from inner
    except RuntimeError as outer:
        assert _tongyi_error(outer) is ours
    assert _tongyi_error(RuntimeError("nothing of ours")) is None

    class Wrapper(APIError):  # Ray's RayTaskError(APIError): an instance of ours, and a trace
        def __init__(self, cause: APIError) -> None:
            super().__init__("ray::MapWorker ... a long trace")
            self.cause = cause

    assert _tongyi_error(Wrapper(ours)) is ours


def test_a_row_the_workers_refused_is_reported_as_the_error_they_named() -> None:
    from tongyi_vision import CorruptMediaError, TongyiVisionError
    from tongyi_vision.cli.embed import _refusal

    refused = _refusal("CorruptMediaError: '/p/a.png': is PNG data cut short", "/p/a.png")
    assert isinstance(refused, CorruptMediaError)
    assert (refused.reason, refused.part) == ("is PNG data cut short", "/p/a.png")
    other = _refusal("BadRequestError: the service refused the part", "/p/b.png")
    assert not isinstance(other, InputError) and isinstance(other, TongyiVisionError)
    assert str(other) == "/p/b.png: BadRequestError: the service refused the part"
    assert isinstance(_refusal("", "/p/c.png"), InputError)
