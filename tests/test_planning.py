"""Planning a call: duplicates sent once, requests packed within the limits."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests._core_fakes import FakeService, MakeClient, png_bytes, text_vector, vector_for
from tongyi_vision import Image, MultiImage, Part, Video
from tongyi_vision.engine.planner import Batch, Limits, dedupe, pack, split
from tongyi_vision.media.parts import prepare_part


def test_equal_parts_are_sent_once_and_all_get_the_vector(
    make_client: MakeClient, service: FakeService, tmp_path: Path
) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    data = png_bytes(4, 4)
    client = make_client(service)
    parts: list[Part] = [
        "same text",
        Image("https://example.com/a.png"),
        "same text",
        Image(path),
        Image(str(path)),
        Image(data),
        Image(bytearray(data)),
        Image("https://example.com/a.png"),
        "other",
    ]
    result = client.embed(parts)

    sent = service.parts_sent
    assert len(sent) == 5
    assert sorted(c.get("text", "") for c in sent if "text" in c) == ["other", "same text"]
    assert result.vectors[0] == result.vectors[2] == text_vector("same text")
    assert (
        result.vectors[1] == result.vectors[7] == vector_for({"image": "https://example.com/a.png"})
    )
    assert result.vectors[3] == result.vectors[4]
    assert result.vectors[5] == result.vectors[6]
    assert result.vectors[3] != result.vectors[5]
    assert result.vectors[8] == text_vector("other")


def test_dedupe_keeps_first_positions_and_owners() -> None:
    prepared = [(i, prepare_part(t)) for i, t in enumerate(["a", "b", "a", "c", "b"])]
    unique, owners = dedupe(prepared)
    assert [p.key for p in unique] == ["t:a", "t:b", "t:c"]
    assert owners == [[0, 2], [1, 4], [3]]


def test_at_most_eight_images_per_request(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service)
    images = [Image(f"https://example.com/{i}.png") for i in range(20)]
    result = client.embed(images)
    assert sorted(len(s.contents) for s in service.seen) == [4, 8, 8]  # any order: concurrent
    assert result.vectors == [
        vector_for({"image": f"https://example.com/{i}.png"}) for i in range(20)
    ]


def test_multi_images_count_every_image_against_the_request_limit(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service, max_concurrency=1)
    groups = [MultiImage([f"https://example.com/{g}-{i}.png" for i in range(3)]) for g in range(5)]
    client.embed(groups)
    # 3 images each: two groups (6 images) fit in a request, a third would make 9
    assert [len(s.contents) for s in service.seen] == [2, 2, 1]
    for seen in service.seen:
        assert sum(len(c["multi_images"]) for c in seen.contents) <= 8


def test_max_parts_per_request(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service, max_parts_per_request=3, max_concurrency=1)
    client.embed([f"t{i}" for i in range(10)])
    assert [len(s.contents) for s in service.seen] == [3, 3, 3, 1]


def test_default_parts_per_request_is_the_service_limit(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    client.embed([f"t{i}" for i in range(45)])
    assert sorted(len(s.contents) for s in service.seen) == [5, 20, 20]


def test_texts_and_media_go_in_separate_requests(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    client.embed(
        [
            "t0",
            Image("https://example.com/a.png"),
            "t1",
            Video("https://example.com/v.mp4"),
            MultiImage(["https://example.com/b.png"]),
        ]
    )
    kinds = [{next(iter(c)) for c in s.contents} for s in service.seen]
    assert sorted(map(sorted, kinds)) == [["image", "multi_images", "video"], ["text"]]
    text_body = next(s.body for s in service.seen if isinstance(s.body["input"], list))
    assert text_body["input"] == ["t0", "t1"]


def test_body_size_cap(make_client: MakeClient, service: FakeService) -> None:
    from PIL import Image as PILImage

    images = []
    for seed in range(6):
        # noisy pixels do not compress, so each PNG is about 30 kB
        noise = PILImage.effect_noise((100, 100), 64 + seed).convert("RGB")
        images.append(Image(noise))
    cap = 100_000
    client = make_client(service, max_request_bytes=cap, max_concurrency=1)
    result = client.embed(images)
    assert len(result.vectors) == 6
    assert len(service.seen) >= 2
    for seen in service.seen:
        assert len(seen.request.content) <= cap
    assert sum(len(s.contents) for s in service.seen) == 6


def test_a_part_larger_than_the_cap_still_goes_alone() -> None:
    big = prepare_part(Image(png_bytes(300, 300)))
    small = prepare_part("t")
    batches = pack([big, small, big], Limits(max_parts=20, max_images=8, max_bytes=1024))
    assert [b.items for b in batches] == [[0], [1], [2]]


def test_pack_keeps_order_inside_each_kind() -> None:
    parts = [prepare_part(p) for p in ["a", Image("https://x.io/1.png"), "b", "c"]]
    batches = pack(parts, Limits(max_parts=2, max_images=8, max_bytes=10**6))
    assert [b.items for b in batches] == [[0, 2], [1], [3]]
    assert [b.has_media for b in batches] == [False, True, False]


def test_split_halves_a_batch_and_recounts_it() -> None:
    parts = [prepare_part(Image(f"https://x.io/{i}.png")) for i in range(5)]
    batch = pack(parts, Limits(max_parts=20, max_images=8, max_bytes=10**6))[0]
    halves = split(batch, parts)
    assert [h.items for h in halves] == [[0, 1], [2, 3, 4]]
    assert [h.images for h in halves] == [2, 3]
    assert all(isinstance(h, Batch) and h.has_media for h in halves)
    assert halves[0].size + halves[1].size > batch.size  # each half has its own envelope


@pytest.mark.parametrize("dialect", ["openai", "dashscope"])
def test_data_uri_images_are_sent_as_given(make_client: MakeClient, dialect: str) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    service = FakeService(dialect=dialect)
    client = make_client(service, dialect=dialect)
    client.embed([Image(uri)])
    assert service.parts_sent == [{"image": uri}]


def test_duplicates_get_their_own_copy_of_the_vector(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    result = client.embed(["same", "same"])
    assert result.vectors[0] == result.vectors[1]
    result.vectors[0][0] = -1.0  # a caller normalising one vector in place
    assert result.vectors[1] == text_vector("same")


def test_pil_images_are_equal_only_to_themselves() -> None:
    from PIL import Image as PILImage

    first = PILImage.new("RGB", (2, 2))
    second = PILImage.new("RGB", (2, 2))
    assert Image(first) == Image(first)
    assert hash(Image(first)) == hash(Image(first))
    assert Image(first) != Image(second)
    assert Image(first) != Image(png_bytes())
