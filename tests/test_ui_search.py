"""The page's searches without the web: filters, queries by text, image, video and stored
vector over a real index table, with a client on a fake service (what it was sent is checked),
and the records the page reads."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from tests._core_fakes import KEY, contents_of
from tongyi_vision import Client
from tongyi_vision.index import IndexInfo, IndexTable, Row
from tongyi_vision.ui import Filters, QueryError, RecentQueries, Searcher, item_token
from tongyi_vision.ui._search import folder_size, hit_record, usage_record

FLASH = "tongyi-embedding-vision-flash"
DIMENSION = 768


def axis(number: int, weight: float = 1.0) -> list[float]:
    """A unit vector along one axis, plus a little of axis 0 so no two rows are orthogonal."""
    vector = [0.0] * DIMENSION
    vector[number] = weight
    vector[0] += 0.1
    return vector


class Service:
    """Answers texts by their words (``"axis 3"`` is the vector of axis 3) and images by a
    vector chosen per test; records every part it was sent."""

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.image_vector = axis(5)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        contents = contents_of(json.loads(request.content))
        self.parts.extend(contents)
        data = []
        for index, content in enumerate(contents):
            if "text" in content:
                vector = axis(int(content["text"].split()[-1]))
            else:
                vector = self.image_vector
            data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = {"prompt_tokens": 7 * len(contents), "total_tokens": 7 * len(contents)}
        return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
def client(service: Service) -> Iterator[Client]:
    http = httpx.Client(transport=httpx.MockTransport(service))
    with Client(KEY, model=FLASH, http_client=http, cache=RecentQueries()) as made:
        yield made


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def table(tmp_path: Path) -> IndexTable:
    made = IndexTable.create(tmp_path / "index", IndexInfo(FLASH, DIMENSION, "openai"))
    rows = []
    for number in range(1, 5):
        rows.append(
            Row(
                id=f"/texts/t{number}.txt",
                source=f"/texts/t{number}.txt",
                kind="text",
                sha256=f"{number}" * 64,
                content=f"text number {number}",
                vector=axis(number),
                metadata={"file_name": f"t{number}.txt"},
            )
        )
    for number in range(5, 8):
        path = tmp_path / f"image-{number}.png"
        path.write_bytes(png((number * 30, 10, 10)))
        rows.append(
            Row(
                id=str(path),
                source=str(path),
                kind="image",
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                content=path.as_uri(),
                vector=axis(number),
                metadata={"file_name": path.name, "width": 40, "height": 30},
            )
        )
    clip = tmp_path / "talk.mp4"
    rows.append(
        Row(
            id=f"{clip}#t=10,20",
            source=str(clip),
            kind="video",
            sha256="c" * 64,
            content=f"{clip.as_uri()}#t=10,20",
            vector=axis(8),
            metadata={"file_name": "talk.mp4"},
            start_seconds=10.0,
            end_seconds=20.0,
        )
    )
    made.add(rows)
    return made


@pytest.fixture
def searcher(table: IndexTable, client: Client) -> Searcher:
    return Searcher(table, client)


def test_filters_default_to_every_kind_and_the_servers_k() -> None:
    assert Filters.parse(None, None, 7) == Filters(("text", "image", "video"), 7)
    assert Filters.parse([], "", 7).where() is None
    assert Filters.parse("image, video", "3").kinds == ("image", "video")
    assert Filters.parse(["video", "text"], 200).kinds == ("text", "video")
    assert Filters.parse(["image"], 1).where() == "kind IN ('image')"


@pytest.mark.parametrize(
    ("kinds", "k", "message"),
    [
        (["audio"], 5, "unknown kind 'audio'"),
        ("text,'; drop", 5, "unknown kind"),
        ([1], 5, "kinds must be a list"),
        ({"text": 1}, 5, "kinds must be a list"),
        (None, 0, "k must be a whole number from 1 to 200"),
        (None, 201, "k must be a whole number"),
        (None, "ten", "k must be a whole number"),
        (None, True, "k must be a whole number"),
        (None, 2.5, "k must be a whole number"),
    ],
)
def test_filters_outside_the_choices_are_refused(kinds: object, k: object, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        Filters.parse(kinds, k)


def test_a_text_query_is_embedded_once_and_finds_its_item_first(
    searcher: Searcher, service: Service
) -> None:
    answer = searcher.by_text("  axis 3 ", Filters(k=3))
    assert service.parts == [{"text": "axis 3"}]
    assert answer.hits[0].row.id == "/texts/t3.txt"
    assert len(answer.hits) == 3 and answer.hits[0].score == pytest.approx(1.0)
    assert answer.usage.requests == 1 and answer.usage.total_tokens == 7
    assert answer.usage.cost_usd > 0
    assert answer.query == {"type": "text", "text": "axis 3"}


def test_the_same_query_again_is_answered_from_memory(searcher: Searcher, service: Service) -> None:
    searcher.by_text("axis 2", Filters(k=2))
    again = searcher.by_text("axis 2", Filters(("text",), 4))
    assert len(service.parts) == 1
    assert again.usage.requests == 0 and again.usage.cached == 1
    assert [h.row.kind for h in again.hits] == ["text"] * 4


def test_kinds_filter_the_results(searcher: Searcher) -> None:
    answer = searcher.by_text("axis 6", Filters(("image", "video"), 10))
    assert {hit.row.kind for hit in answer.hits} == {"image", "video"}
    assert len(answer.hits) == 4 and answer.hits[0].row.id.endswith("image-6.png")


def test_a_filter_that_matches_nothing_sends_nothing(
    tmp_path: Path, client: Client, service: Service
) -> None:
    empty = IndexTable.create(tmp_path / "texts-only", IndexInfo(FLASH, DIMENSION, "openai"))
    answer = Searcher(empty, client).by_text("axis 1", Filters(("image",), 5))
    assert answer.hits == [] and service.parts == []


@pytest.mark.parametrize("text", ["", "   ", None, 42])
def test_an_empty_text_query_is_refused(searcher: Searcher, text: object) -> None:
    with pytest.raises(QueryError, match="type something"):
        searcher.by_text(text, Filters())


def test_an_image_query_is_checked_and_sent_like_any_image(
    searcher: Searcher, service: Service
) -> None:
    answer = searcher.by_image(png((1, 2, 3)), "'mine.png'", Filters(k=2))
    [sent] = service.parts
    assert sent["image"].startswith("data:image/png;base64,")
    assert answer.hits[0].row.id.endswith("image-5.png")
    assert answer.query == {"type": "image", "name": "'mine.png'"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the image is empty"),
        (b"just some text, not a picture", "is not an image in a format"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "cannot be decoded|cut short|corrupt|not an image"),
    ],
)
def test_a_bad_image_is_refused_naming_the_upload_and_nothing_is_sent(
    searcher: Searcher, service: Service, data: bytes, message: str
) -> None:
    with pytest.raises(QueryError, match=message) as raised:
        searcher.by_image(data, "'broken.png'", Filters())
    assert str(raised.value).startswith("'broken.png': ")
    assert service.parts == []


def test_more_like_this_uses_the_stored_vector_and_leaves_the_item_out(
    searcher: Searcher, service: Service, table: IndexTable
) -> None:
    item = next(i for i in table.state() if i.endswith("image-6.png"))
    answer = searcher.like(item, Filters(k=3))
    assert service.parts == []  # nothing sent, nothing paid
    assert answer.usage.requests == 0 and answer.usage.cost_usd == 0
    assert item not in [hit.row.id for hit in answer.hits] and len(answer.hits) == 3
    assert answer.query == {"type": "like", "id": item, "name": "image-6.png"}


@pytest.mark.parametrize("item", ["/not/in/the/index.png", "", None, ["a"]])
def test_more_like_an_item_that_is_not_in_the_index_is_refused(
    searcher: Searcher, item: object
) -> None:
    with pytest.raises(QueryError):
        searcher.like(item, Filters())


def test_records_carry_the_media_urls_by_token_and_no_vector(
    searcher: Searcher, table: IndexTable
) -> None:
    hits = searcher.by_text("axis 8", Filters(k=9)).hits
    records = [hit_record(rank, hit) for rank, hit in enumerate(hits, start=1)]
    clip = records[0]
    assert clip["kind"] == "video" and (clip["start_seconds"], clip["end_seconds"]) == (10, 20)
    assert clip["media_url"] == "/media/" + item_token(clip["id"])
    assert clip["thumb_url"].startswith(clip["media_url"] + "/thumb?v=cccccccccccc")
    text = next(r for r in records if r["kind"] == "text")
    assert text["text"].startswith("text number") and "media_url" not in text
    assert all("vector" not in r for r in records)
    json.dumps(records)  # all of it is JSON


def test_the_summary_counts_each_kind_and_the_size_on_disk(
    searcher: Searcher, table: IndexTable
) -> None:
    summary = searcher.summary(emulated=True, service="the emulator")
    index = summary["index"]
    assert index["counts"] == {"text": 4, "image": 3, "video": 1} and index["items"] == 8
    assert index["model"] == FLASH and index["dimension"] == DIMENSION
    assert index["dialect"] == "openai" and index["ann"] is False
    assert index["bytes_on_disk"] == folder_size(table.path) > 0
    assert summary["service"] == {
        "emulated": True,
        "description": "the emulator",
        "model": FLASH,
        "dialect": "openai",
    }
    assert summary["usage"] == usage_record(searcher.client.usage)
    assert KEY not in json.dumps(summary)


def test_recent_queries_keep_the_latest_entries() -> None:
    store = RecentQueries(entries=2)
    store.mset([("a", b"1"), ("b", b"2")])
    assert store.mget(["a"]) == [b"1"]  # "a" is now the latest
    store.mset([("c", b"3")])
    assert store.mget(["a", "b", "c"]) == [b"1", None, b"3"] and len(store) == 2
    with pytest.raises(ValueError):
        RecentQueries(entries=0)
