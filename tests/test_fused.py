"""Fused parts: one content object, one vector; refused before sending where it cannot go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._core_fakes import FakeService, MakeAsyncClient, MakeClient, png_bytes, vector_for
from tongyi_vision import (
    FLASH,
    FLASH_SNAPSHOT,
    EmbeddingCache,
    Fused,
    Image,
    InputError,
    MultiImage,
    Video,
)
from tongyi_vision.media.sources import data_uri

A = "https://example.com/a.png"
B = "https://example.com/b.png"
CLIP = "https://example.com/clip.mp4"


def snapshot(**options: Any) -> dict[str, Any]:
    return {"dialect": "dashscope", "model": FLASH_SNAPSHOT, **options}


def test_a_fused_part_is_one_content_object_and_one_vector(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot())
    fused = Fused(["a red bicycle", Image(A)])
    result = client.embed(["a red bicycle", fused, Image(A)])
    bodies = [s.body for s in service.seen]
    media = next(b for b in bodies if "image" in str(b))
    assert media == {
        "model": FLASH_SNAPSHOT,
        "input": {"contents": [{"text": "a red bicycle", "image": A}, {"image": A}]},
    }
    assert result.vectors == [
        vector_for({"text": "a red bicycle"}),
        vector_for({"text": "a red bicycle", "image": A}),
        vector_for({"image": A}),
    ]


def test_several_images_go_as_multi_images_with_a_video_beside_them(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot(fps=0.5))
    client.embed([Fused([Image(A), "front and back", MultiImage([B]), Video(CLIP)])])
    (seen,) = service.seen
    assert seen.body["input"]["contents"] == [
        {"text": "front and back", "multi_images": [A, B], "video": CLIP}
    ]
    assert seen.body["parameters"] == {"fps": 0.5}  # the video's sampling applies


def test_a_fused_part_carries_its_images_tier_and_inline_images(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot())
    picture = png_bytes()
    client.embed([Fused(["a chart", Image(picture, res_level=3)])])
    (seen,) = service.seen
    assert seen.contents == [{"text": "a chart", "image": data_uri("image/png", picture)}]
    assert seen.body["parameters"] == {"res_level": 3}


def test_refused_before_sending_on_a_model_that_does_not_fuse(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, dialect="dashscope", model=FLASH)
    with pytest.raises(InputError) as caught:
        client.embed(["fine", Fused(["a red bicycle", Image(A)])])
    error = caught.value
    assert error.part_index == 1
    assert "Fused(<text, Image>)" in str(error)
    assert f"{FLASH} does not fuse" in str(error) and FLASH_SNAPSHOT in str(error)
    assert service.seen == []


def test_refused_before_sending_in_the_openai_dialect(make_client: MakeClient) -> None:
    service = FakeService()
    client = make_client(service, model=FLASH_SNAPSHOT)
    with pytest.raises(InputError, match="dialect='dashscope'"):
        client.embed([Fused(["a red bicycle", Image(A)])])
    assert service.seen == []


async def test_async_client_sends_the_same_fused_body(make_async_client: MakeAsyncClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_async_client(service, **snapshot())
    result = await client.embed([Fused(["a red bicycle", Image(A)])])
    assert service.seen[0].contents == [{"text": "a red bicycle", "image": A}]
    assert result.vectors == [vector_for({"text": "a red bicycle", "image": A})]


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (["one", "two", Image(A)], "has 2 texts"),
        ([Video(CLIP), Video(CLIP), "x"], "at most one"),
        ([Image(A)], "has one member"),
        ([], "no parts"),
        ([Image(A, res_level=1), Image(B, res_level=2)], "res_level 1 and 2"),
        ([Image(f"https://example.com/{n}.png") for n in range(9)], "at most 8"),
        (["", Image(A)], "in Fused.*text is empty"),
    ],
)
def test_a_fused_part_is_checked_naming_what_is_wrong(
    make_client: MakeClient, members: list[Any], expected: str
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot())
    with pytest.raises(InputError, match=expected) as caught:
        client.embed([Fused(members)])
    assert caught.value.part_index == 0
    assert service.seen == []


def test_a_local_video_sampled_here_cannot_be_fused(tmp_path: Path) -> None:
    local = tmp_path / "clip.mp4"
    local.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    with pytest.raises(InputError, match="give it by URL"):
        Fused(["a talk", Video(local)]).prepare()


def test_fused_takes_a_list_of_texts_and_media_only() -> None:
    with pytest.raises(InputError, match="list of parts"):
        Fused("a red bicycle")
    with pytest.raises(InputError, match="member 1 of Fused is a bytes"):
        Fused(["a", b"raw"])  # type: ignore[list-item]


def test_its_identity_combines_its_members_identities() -> None:
    red, blue = png_bytes(), png_bytes(color=(0, 0, 200))
    one = Fused(["a bicycle", Image(red)]).prepare()
    same = Fused(["a bicycle", Image(red)]).prepare()
    other_image = Fused(["a bicycle", Image(blue)]).prepare()
    other_text = Fused(["a tricycle", Image(red)]).prepare()
    members = [Image(red).prepare().identity(), "a bicycle"]
    assert one.identity() == same.identity()
    assert len({one.identity(), other_image.identity(), other_text.identity()}) == 3
    assert members[0] in one.identity()
    assert one.identity() != Image(red).prepare().identity()
    remote = Fused(["a bicycle", Image(A)]).prepare()
    assert remote.identity().startswith("url:")  # not cached unless cache_urls


def test_a_fused_part_is_cached_by_its_members(make_client: MakeClient, tmp_path: Path) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **snapshot(cache=EmbeddingCache(tmp_path / "cache.sqlite")))
    red = png_bytes()
    first = client.embed([Fused(["a bicycle", Image(red)])])
    again = client.embed([Fused(["a bicycle", Image(red)])])
    assert len(service.seen) == 1 and again.usage.cached == 1
    assert again.vectors == first.vectors
    client.embed([Image(red), "a bicycle"])  # the members alone are other vectors
    assert len(service.seen) == 3
