"""The model table, the native parameters (res_level, fps, max_video_frames), token-budget
packing and per-modality usage: what is refused before sending, and the exact bodies sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._core_fakes import FakeService, MakeClient, png_bytes, vector_for
from tongyi_vision import (
    FLASH,
    FLASH_SNAPSHOT,
    PLUS,
    PLUS_SNAPSHOT,
    ConfigurationError,
    DimensionMismatchError,
    EmbeddingCache,
    Image,
    InputError,
    MultiImage,
    UnknownModelWarning,
    Video,
)
from tongyi_vision.wire.limits import MODELS, model_spec

URL = "https://example.com/a.png"
CLIP = "https://example.com/clip.mp4"


def native(**options: Any) -> dict[str, Any]:
    return {"dialect": "dashscope", "model": FLASH_SNAPSHOT, **options}


# --- the model table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "accepted", "refused"),
    [
        (FLASH, [768, 512, 256, 128, 64], [300, 1024, 63]),
        (PLUS, [1152, 1024, 512, 64], [768, 300]),
        (FLASH_SNAPSHOT, [64, 300, 767, 768], [63, 769, 1152]),
        (PLUS_SNAPSHOT, [64, 300, 1000, 1152], [63, 1153]),
    ],
)
def test_each_model_takes_its_dimensions_and_refuses_others_naming_them(
    make_client: MakeClient, model: str, accepted: list[int], refused: list[int]
) -> None:
    service = FakeService(dialect="dashscope")
    for size in accepted:
        assert make_client(service, dialect="dashscope", model=model, dimension=size).dimension == (
            size
        )
    for size in refused:
        with pytest.raises(ConfigurationError) as caught:
            make_client(service, dialect="dashscope", model=model, dimension=size)
        message = str(caught.value)
        assert model in message and f"not {size}" in message
        assert model_spec(model).describe_dimensions() in message
    assert service.seen == []


def test_snapshots_are_priced_as_their_base_and_unknown_names_as_the_dearest() -> None:
    for base, snapshot in ((FLASH, FLASH_SNAPSHOT), (PLUS, PLUS_SNAPSHOT)):
        assert MODELS[snapshot].text_price_per_million == MODELS[base].text_price_per_million
        assert MODELS[snapshot].media_price_per_million == MODELS[base].media_price_per_million
    unknown = model_spec("tongyi-embedding-vision-max")
    assert not unknown.known
    assert unknown.media_price_per_million == max(
        s.media_price_per_million for s in MODELS.values()
    )


def test_an_unknown_model_warns_and_takes_any_size_and_parameter(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope", dimension=300)
    with pytest.warns(UnknownModelWarning, match="tongyi-embedding-vision-max"):
        client = make_client(
            service,
            dialect="dashscope",
            model="tongyi-embedding-vision-max",
            dimension=300,
            res_level=2,
        )
    result = client.embed([Image(URL)])
    assert service.seen[0].body["parameters"] == {"dimension": 300, "res_level": 2}
    assert len(result.vectors[0]) == 300
    # priced as plus (the dearest): 10 tokens of media at $0.09 per million
    assert result.usage.cost_usd == pytest.approx(10 * 0.09 / 1e6)


def test_an_undated_name_that_ignores_dimension_is_a_typed_error_not_retried(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope", dimension=768)  # the service ignores 256
    client = make_client(service, dialect="dashscope", model=FLASH, dimension=256)
    with pytest.raises(DimensionMismatchError) as caught:
        client.embed(["a", "b"])
    assert service.seen[0].body["parameters"] == {"dimension": 256}
    assert len(service.seen) == 1  # the same request would get the same size
    message = str(caught.value)
    assert "768 dimensions where 256 were expected" in message
    assert "dimension=256" in message and FLASH_SNAPSHOT in message


# --- res_level -------------------------------------------------------------------------


def test_res_level_goes_in_the_parameters_of_media_requests_only(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope", dimension=256)
    client = make_client(service, **native(dimension=256, res_level=2))
    client.embed(["a red bicycle", Image(URL)])
    bodies = sorted(
        (s.body for s in service.seen), key=lambda b: "text" in b["input"]["contents"][0]
    )
    assert bodies == [
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"image": URL}]},
            "parameters": {"dimension": 256, "res_level": 2},
        },
        {
            "model": FLASH_SNAPSHOT,
            "input": {"contents": [{"text": "a red bicycle"}]},
            "parameters": {"dimension": 256},
        },
    ]


def test_a_part_with_its_own_res_level_goes_in_a_request_of_its_own(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **native(res_level=1))
    other = "https://example.com/b.png"
    result = client.embed(
        [Image(URL), Image(URL, res_level=3), Image(other), MultiImage([URL, other], res_level=0)]
    )
    sent = sorted((s.body["parameters"]["res_level"], s.contents) for s in service.seen)
    assert sent == [
        (0, [{"multi_images": [URL, other]}]),
        (1, [{"image": URL}, {"image": other}]),
        (3, [{"image": URL}]),  # the same image at another tier is another part
    ]
    assert result.vectors[0] == vector_for({"image": URL})


def test_res_level_is_refused_before_sending_where_the_model_or_dialect_lacks_it(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    with pytest.raises(ConfigurationError, match=f"{FLASH} does not take res_level"):
        make_client(service, dialect="dashscope", model=FLASH, res_level=2)
    with pytest.raises(ConfigurationError, match="openai dialect"):
        make_client(service, model=FLASH_SNAPSHOT, res_level=2)
    undated = make_client(service, dialect="dashscope", model=FLASH)
    with pytest.raises(InputError) as caught:
        undated.embed(["fine", Image(URL, res_level=2)])
    assert caught.value.part_index == 1
    assert f"{FLASH} does not take res_level" in str(caught.value)
    gateway = make_client(FakeService(), model=FLASH_SNAPSHOT)
    with pytest.raises(InputError, match="dialect='dashscope'"):
        gateway.embed([Image(URL, res_level=2)])
    assert service.seen == []


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("res_level", 4, "0 to 3"),
        ("res_level", True, "res_level"),
        ("fps", 1.5, "ratio in \\[0, 1\\]"),
        ("fps", -0.1, "ratio"),
        ("max_video_frames", 65, "1 to 64"),
        ("max_video_frames", 0, "1 to 64"),
        ("instruct", "  ", "non-empty"),
    ],
)
def test_parameter_values_are_checked_on_the_client_and_on_parts(
    make_client: MakeClient, option: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        make_client(FakeService(dialect="dashscope"), **native(**{option: value}))
    if option == "res_level":
        with pytest.raises(InputError, match=expected):
            Image(URL, res_level=value)  # type: ignore[arg-type]
    elif option != "instruct":
        with pytest.raises(InputError, match=expected):
            Video(CLIP, **{option: value})  # type: ignore[arg-type]


# --- video sampling --------------------------------------------------------------------


def test_fps_and_max_video_frames_of_the_client_and_of_a_video_are_sent(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **native(fps=0.5))
    other = "https://example.com/other.mp4"
    client.embed([Video(CLIP, max_video_frames=16), Video(other), Video(CLIP, fps=0.25)])
    sent = sorted(
        (json.dumps(s.body["parameters"], sort_keys=True), s.contents) for s in service.seen
    )
    assert sent == [
        ('{"fps": 0.25}', [{"video": CLIP}]),
        ('{"fps": 0.5, "max_video_frames": 16}', [{"video": CLIP}]),
        ('{"fps": 0.5}', [{"video": other}]),
    ]


def test_fps_is_taken_by_undated_names_but_max_video_frames_is_not(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, dialect="dashscope", model=FLASH, fps=0.5)
    client.embed([Video(CLIP)])
    assert service.seen[0].body["parameters"] == {"fps": 0.5}
    with pytest.raises(ConfigurationError, match=f"{FLASH} does not take max_video_frames"):
        make_client(service, dialect="dashscope", model=FLASH, max_video_frames=16)


def test_sampling_parameters_on_a_video_sampled_here_are_refused(tmp_path: Path) -> None:
    local = tmp_path / "clip.mp4"
    local.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    with pytest.raises(InputError, match="strategy='frames'"):
        Video(local, fps=0.5).prepare()


# --- token budget and parts cap --------------------------------------------------------


@pytest.mark.parametrize(("res_level", "per_request"), [(3, 1), (1, 2), (0, 7)])
def test_requests_are_packed_by_estimated_tokens_at_the_resolution_tier(
    make_client: MakeClient, res_level: int, per_request: int
) -> None:
    # 1,026, 402 and 127 tokens an image: a budget of 1,000 holds 0 (then 1, alone), 2 or 7
    service = FakeService(dialect="dashscope")
    client = make_client(
        service, **native(res_level=res_level, max_request_tokens=1000, max_concurrency=1)
    )
    images = [Image(f"https://example.com/{n}.png") for n in range(8)]
    result = client.embed(images)
    sizes = [len(s.contents) for s in service.seen]
    assert max(sizes) == per_request and sum(sizes) == 8
    assert result.vectors == [
        vector_for({"image": f"https://example.com/{n}.png"}) for n in range(8)
    ]


def test_the_parts_cap_is_a_setting_beyond_the_old_twenty(make_client: MakeClient) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **native(max_parts_per_request=30))
    client.embed([f"text {n}" for n in range(30)])
    assert [len(s.contents) for s in service.seen] == [30]
    default = make_client(FakeService(dialect="dashscope"), **native())
    assert default._limits.max_parts == 20  # the documented default


def test_the_default_token_budget_does_not_split_what_the_parts_cap_keeps(
    make_client: MakeClient,
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, **native())
    client.embed(["word " * 150 + str(n) for n in range(20)])  # about 150 tokens each
    assert [len(s.contents) for s in service.seen] == [20]


# --- usage per modality ------------------------------------------------------------------


def detailed(
    seen_contents: list[Any], usage: dict[str, Any], dimension: int = 768
) -> httpx.Response:
    embeddings = [
        {"index": i, "embedding": vector_for(c, dimension), "type": "text"}
        for i, c in enumerate(seen_contents)
    ]
    return httpx.Response(
        200, json={"output": {"embeddings": embeddings}, "usage": usage, "request_id": "r"}
    )


def test_usage_and_cost_per_modality_from_input_tokens_details(make_client: MakeClient) -> None:
    usage = {
        "input_tokens": 1000,
        "input_tokens_details": {"text_tokens": 100, "image_tokens": 402, "video_tokens": 498},
        "total_tokens": 1000,
    }
    service = FakeService(
        dialect="dashscope", fail=lambda seen: detailed(seen.contents, usage, 1152)
    )
    client = make_client(service, dialect="dashscope", model=PLUS)
    result = client.embed([Image(URL)])
    got = result.usage
    assert (got.text_tokens, got.image_tokens, got.video_tokens) == (100, 402, 498)
    assert got.media_tokens == 900 and not got.modality_estimated
    assert got.text_cost_usd == pytest.approx(100 * 0.09 / 1e6)
    assert got.image_cost_usd == pytest.approx(402 * 0.09 / 1e6)
    assert got.video_cost_usd == pytest.approx(498 * 0.09 / 1e6)
    assert got.cost_usd == pytest.approx(got.text_cost_usd + got.media_cost_usd)
    assert client.usage.video_tokens == 498  # summed over the client's life


def test_details_without_input_tokens_add_up_and_the_older_shape_names_images(
    make_client: MakeClient,
) -> None:
    newer = {"input_tokens_details": {"text_tokens": 7, "video_tokens": 300}}
    service = FakeService(dialect="dashscope", fail=lambda seen: detailed(seen.contents, newer))
    result = make_client(service, **native()).embed([Video(CLIP)])
    assert (result.usage.prompt_tokens, result.usage.video_tokens) == (307, 300)
    assert result.usage.media_cost_usd == pytest.approx(300 * 0.03 / 1e6)
    older = {"input_tokens": 5, "image_tokens": 80, "image_count": 1}
    service = FakeService(dialect="dashscope", fail=lambda seen: detailed(seen.contents, older))
    result = make_client(service, **native()).embed([Image(URL)])
    assert (result.usage.image_tokens, result.usage.video_tokens, result.usage.text_tokens) == (
        80,
        0,
        5,
    )


# --- the cache ---------------------------------------------------------------------------


def test_the_cache_keys_on_the_parameters_a_part_is_sent_with(
    make_client: MakeClient, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    service = FakeService(dialect="dashscope")
    picture = png_bytes()
    client = make_client(service, **native(cache=cache))
    client.embed([Image(picture, res_level=2)])
    client.embed([Image(picture, res_level=2)])
    assert len(service.seen) == 1  # the same tier: a hit
    client.embed([Image(picture, res_level=3)])
    client.embed([Image(picture)])
    assert len(service.seen) == 3  # another tier, and the service's default: misses
    assert [s.body.get("parameters") for s in service.seen] == [
        {"res_level": 2},
        {"res_level": 3},
        None,
    ]
