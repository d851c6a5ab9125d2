"""The emulator against contract.md, "Dated snapshots, parameters and regions", point by point:
vector sizes per model, the snapshots' parameters (res_level, max_video_frames, fps, instruct),
fusion, regions and keys, usage per modality, and the three 429 codes. Driven over httpx
against the ASGI app in memory; the expected figures are the contract's."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from tongyi_vision.emulator import EmulatorConfig, build_parser, create_app
from tongyi_vision.emulator._cli import config_from_args
from tongyi_vision.emulator._faults import LoadState
from tongyi_vision.samples import draw_shape
from tongyi_vision.wire.limits import estimate_text_tokens, image_tokens_for_pixels
from tongyi_vision.wire.models import NATIVE_PATH, OPENAI_PATH

FLASH = "tongyi-embedding-vision-flash"
PLUS = "tongyi-embedding-vision-plus"
FLASH_DATED = "tongyi-embedding-vision-flash-2026-03-06"
PLUS_DATED = "tongyi-embedding-vision-plus-2026-03-06"
AUTH = {"Authorization": "Bearer k"}
# contract.md: tokens per image at res_level 0..3, and the default tier.
TIER_TOKENS = {0: 127, 1: 402, 2: 578, 3: 1026}
DEFAULT_TIER = 1
# The emulator's documented video formula: 10 seconds, 448x448 frames.
FRAME_TOKENS = image_tokens_for_pixels(448, 448)
VIDEO = "https://media.test/clip.mp4"

App = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app() -> App:
    """Open an in-memory client of an emulator configured by keyword arguments."""

    @asynccontextmanager
    async def open_app(**options: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(EmulatorConfig.from_options(**options))
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
            yield client

    return open_app


@pytest.fixture
async def http(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with app() as client:
        yield client


def png(shape: str, colour: tuple[int, int, int], size: int = 96) -> str:
    buffer = io.BytesIO()
    draw_shape(shape, colour, size=size).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


RED_CIRCLE = png("circle", (220, 30, 40))
BLUE_SQUARE = png("square", (30, 60, 220))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


async def native(
    http: httpx.AsyncClient,
    contents: list[dict[str, Any]],
    model: str = FLASH_DATED,
    headers: dict[str, str] | None = None,
    **parameters: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "input": {"contents": contents}}
    if parameters:
        body["parameters"] = parameters
    return await http.post(NATIVE_PATH, json=body, headers=AUTH if headers is None else headers)


async def vectors(http: httpx.AsyncClient, contents: list[dict[str, Any]], **kw: Any) -> Any:
    response = await native(http, contents, **kw)
    assert response.status_code == 200, response.text[:300]
    return [item["embedding"] for item in response.json()["output"]["embeddings"]]


def refused(response: httpx.Response, status: int, code: str, *words: str) -> str:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    detail = body.get("error", body)
    assert detail["code"] == code
    for word in words:
        assert word in detail["message"]
    return str(detail["message"])


# --- vector sizes per model ---


@pytest.mark.parametrize(
    ("model", "accepted", "refused_sizes"),
    [
        (FLASH, [768, 512, 256, 128, 64], [1152, 1024, 700, 100, 63, 0]),
        (PLUS, [1152, 1024, 512, 256, 128, 64], [768, 1000, 2048, 32]),
        (FLASH_DATED, [768, 700, 333, 128, 64], [769, 1024, 1152, 63, 0]),
        (PLUS_DATED, [1152, 1100, 768, 65, 64], [1153, 2048, 63]),
    ],
)
async def test_dimension_ranges_per_model(
    http: httpx.AsyncClient, model: str, accepted: list[int], refused_sizes: list[int]
) -> None:
    contents = [{"text": "a red bicycle"}, {"image": RED_CIRCLE}, {"video": VIDEO}]
    for size in accepted:
        got = await vectors(http, contents, model=model, dimension=size)
        assert [len(v) for v in got] == [size] * 3
    for size in refused_sizes:
        response = await native(http, contents, model=model, dimension=size)
        refused(response, 400, "InvalidParameter", "parameters.dimension", str(size))


@pytest.mark.parametrize(("model", "size"), [(FLASH_DATED, 768), (PLUS_DATED, 1152)])
async def test_snapshots_default_to_their_full_size_in_both_dialects(
    http: httpx.AsyncClient, model: str, size: int
) -> None:
    assert [len(v) for v in await vectors(http, [{"text": "x"}], model=model)] == [size]
    answer = await http.post(OPENAI_PATH, json={"model": model, "input": ["x"]}, headers=AUTH)
    assert len(answer.json()["data"][0]["embedding"]) == size


async def test_only_the_four_models_exist(http: httpx.AsyncClient) -> None:
    for model in (f"{FLASH}-2025-01-01", "tongyi-embedding-vision-max", FLASH + "-"):
        refused(await native(http, [{"text": "x"}], model=model), 404, "ModelNotFound", model)


# --- res_level ---


@pytest.mark.parametrize("model", [FLASH_DATED, PLUS_DATED])
async def test_res_level_sets_the_image_tokens(http: httpx.AsyncClient, model: str) -> None:
    contents: list[dict[str, Any]] = [
        {"image": RED_CIRCLE},
        {"multi_images": [BLUE_SQUARE, RED_CIRCLE]},
    ]
    for tier, tokens in [*TIER_TOKENS.items(), (None, TIER_TOKENS[DEFAULT_TIER])]:
        extra: dict[str, Any] = {} if tier is None else {"res_level": tier}
        response = await native(http, contents, model=model, **extra)
        usage = response.json()["usage"]
        assert usage["input_tokens_details"]["image_tokens"] == 3 * tokens
        assert usage["input_tokens"] == 3 * tokens


async def test_res_level_out_of_range_is_refused(http: httpx.AsyncClient) -> None:
    for value in (-1, 4, 1.5, True, "1"):
        response = await native(http, [{"image": RED_CIRCLE}], res_level=value)
        refused(response, 400, "InvalidParameter", "parameters.res_level", "0..3")


@pytest.mark.parametrize("model", [FLASH, PLUS])
@pytest.mark.parametrize(
    ("name", "value"), [("res_level", 1), ("max_video_frames", 8), ("instruct", "Find images")]
)
async def test_undated_models_refuse_snapshot_parameters(
    http: httpx.AsyncClient, model: str, name: str, value: Any
) -> None:
    response = await native(http, [{"text": "x"}], model=model, **{name: value})
    refused(response, 400, "InvalidParameter", f"parameters.{name}", model, f"{model}-2026-03-06")


async def test_undated_models_bill_images_by_their_pixels(http: httpx.AsyncClient) -> None:
    response = await native(http, [{"image": png("circle", (1, 2, 3), size=280)}], model=FLASH)
    assert response.json()["usage"]["input_tokens_details"]["image_tokens"] == (
        image_tokens_for_pixels(280, 280)
    )


# --- video: fps and max_video_frames ---


@pytest.mark.parametrize(
    ("parameters", "frames"),
    [
        ({}, 8),  # 10 frames at fps 1.0, capped by the default max_video_frames 8
        ({"max_video_frames": 4}, 4),
        ({"max_video_frames": 64}, 10),
        ({"fps": 0.3}, 3),
        ({"fps": 0.3, "max_video_frames": 2}, 2),
        ({"fps": 0.0}, 1),
        ({"fps": 1}, 8),
    ],
)
async def test_video_tokens_follow_fps_and_max_video_frames(
    http: httpx.AsyncClient, parameters: dict[str, Any], frames: int
) -> None:
    for _ in range(2):  # the same request, the same count
        response = await native(http, [{"video": VIDEO}], **parameters)
        details = response.json()["usage"]["input_tokens_details"]
        assert details["video_tokens"] == frames * FRAME_TOKENS


async def test_undated_models_sample_video_by_fps_alone(http: httpx.AsyncClient) -> None:
    for fps, frames in ((1.0, 10), (0.5, 5), (0.01, 1)):
        response = await native(http, [{"video": VIDEO}], model=FLASH, fps=fps)
        assert response.json()["usage"]["input_tokens_details"]["video_tokens"] == (
            frames * FRAME_TOKENS
        )


@pytest.mark.parametrize("model", [FLASH, FLASH_DATED])
async def test_fps_is_a_ratio_in_0_1(http: httpx.AsyncClient, model: str) -> None:
    for value in (-0.1, 1.5, 30):
        response = await native(http, [{"video": VIDEO}], model=model, fps=value)
        refused(response, 400, "InvalidParameter", "parameters.fps", "[0, 1]")


async def test_max_video_frames_is_at_most_64(http: httpx.AsyncClient) -> None:
    for value in (0, 65, 8.5, False):
        response = await native(http, [{"video": VIDEO}], max_video_frames=value)
        refused(response, 400, "InvalidParameter", "parameters.max_video_frames", "1..64")


# --- instruct ---


async def test_instruct_moves_a_vector_a_little_and_always_the_same_way(
    http: httpx.AsyncClient,
) -> None:
    contents = [{"text": "a red bicycle in the rain"}, {"image": RED_CIRCLE}]
    plain = await vectors(http, contents)
    retrieval = await vectors(http, contents, instruct="Find images that match the query")
    again = await vectors(http, contents, instruct="Find images that match the query")
    other = await vectors(http, contents, instruct="Classify the topic of the text")
    assert retrieval == again
    for index in range(2):
        assert 0.95 <= cosine(plain[index], retrieval[index]) <= 0.99
        assert 0.95 <= cosine(plain[index], other[index]) <= 0.99
        assert cosine(retrieval[index], other[index]) < 0.99
        assert retrieval[index] != plain[index] != other[index]
    # Still nearer its own content than the other content.
    assert cosine(retrieval[0], plain[0]) > cosine(retrieval[0], plain[1]) + 0.5


async def test_instruct_changes_no_bill(http: httpx.AsyncClient) -> None:
    contents = [{"text": "a red bicycle"}]
    plain = (await native(http, contents)).json()["usage"]
    told = (await native(http, contents, instruct="Find images")).json()["usage"]
    assert told == plain


async def test_instruct_must_be_text(http: httpx.AsyncClient) -> None:
    for value in ("", "   ", 3, ["a"]):
        response = await native(http, [{"text": "x"}], instruct=value)
        refused(response, 400, "InvalidParameter", "parameters.instruct")


# --- fusion ---


async def test_a_fused_content_gives_one_vector_near_each_member(
    http: httpx.AsyncClient,
) -> None:
    text, image = "a red bicycle in the rain", RED_CIRCLE
    alone = await vectors(http, [{"text": text}, {"image": image}, {"video": VIDEO}])
    unrelated = await vectors(
        http, [{"text": "quarterly revenue of the company"}, {"image": BLUE_SQUARE}]
    )
    response = await native(http, [{"text": text, "image": image}, {"text": text}])
    embeddings = response.json()["output"]["embeddings"]
    assert [e["index"] for e in embeddings] == [0, 1]
    assert embeddings[0]["type"] == "fused"
    fused = embeddings[0]["embedding"]
    assert embeddings[1]["embedding"] == alone[0]  # separate objects stay independent
    for member in alone[:2]:
        assert fused != member
        assert 0.5 < cosine(fused, member) < 0.95
        for other in unrelated:
            assert cosine(fused, member) > abs(cosine(fused, other)) + 0.3
    three = await vectors(http, [{"text": text, "image": image, "video": VIDEO}])
    assert len(three) == 1
    for member in alone:
        assert 0.4 < cosine(three[0], member) < 0.9


async def test_a_fused_content_is_billed_as_its_members(http: httpx.AsyncClient) -> None:
    content = {"text": "a red bicycle", "image": RED_CIRCLE, "video": VIDEO}
    fused = (await native(http, [content], res_level=2)).json()["usage"]
    text = estimate_text_tokens("a red bicycle")
    video = 8 * FRAME_TOKENS
    assert fused["input_tokens_details"] == {
        "text_tokens": text,
        "image_tokens": TIER_TOKENS[2],
        "video_tokens": video,
    }
    assert fused["input_tokens"] == fused["total_tokens"] == text + TIER_TOKENS[2] + video


async def test_the_gateway_fuses_native_contents_too(http: httpx.AsyncClient) -> None:
    content = {"text": "a red bicycle", "image": RED_CIRCLE}
    native_vector = (await vectors(http, [content]))[0]
    body = {"model": FLASH_DATED, "input": {"contents": [content]}}
    answer = await http.post(OPENAI_PATH, json=body, headers=AUTH)
    assert [d["embedding"] for d in answer.json()["data"]] == [native_vector]
    tokens = estimate_text_tokens("a red bicycle") + TIER_TOKENS[DEFAULT_TIER]
    assert answer.json()["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


@pytest.mark.parametrize("model", [FLASH, PLUS])
async def test_undated_models_refuse_a_content_of_several_modalities(
    http: httpx.AsyncClient, model: str
) -> None:
    contents = [{"text": "ok"}, {"text": "a red bicycle", "image": RED_CIRCLE}]
    response = await native(http, contents, model=model)
    refused(response, 400, "InvalidParameter", "input.contents[1]", "text and image", model)
    body = {"model": model, "input": {"contents": contents}}
    answer = await http.post(OPENAI_PATH, json=body, headers=AUTH)
    assert answer.json()["error"]["param"] == "input.contents[1]"


async def test_what_does_not_fuse(http: httpx.AsyncClient) -> None:
    both = {"image": RED_CIRCLE, "multi_images": [BLUE_SQUARE]}
    refused(await native(http, [both]), 400, "InvalidParameter", "multi_images")
    unknown = {"text": "x", "image": RED_CIRCLE, "audio": "a.mp3"}
    refused(await native(http, [unknown]), 400, "InvalidParameter", "input.contents.0.audio")
    # Members are checked as parts of their own.
    broken = {"text": "x", "image": "/home/me/cat.png"}
    refused(await native(http, [broken]), 400, "InvalidParameter", "local paths")
    eight = [{"image": RED_CIRCLE}] * 8 + [{"text": "x", "image": BLUE_SQUARE}]
    refused(await native(http, eight), 400, "InvalidParameter", "9 images")


# --- regions and keys ---

KEYS = {"sg-key": "singapore", "bj-key": "beijing"}


@pytest.mark.parametrize(
    ("region", "accepted", "refused_keys"),
    [
        ("beijing", ["bj-key", "k"], ["sg-key"]),
        ("singapore", ["sg-key", "k"], ["bj-key"]),
        (None, ["sg-key", "bj-key", "k"], []),
    ],
)
async def test_a_key_of_the_other_region_is_refused(
    app: App, region: str | None, accepted: list[str], refused_keys: list[str]
) -> None:
    async with app(api_key="k", region=region, key_regions=KEYS) as client:
        for key in accepted:
            response = await native(
                client, [{"text": "x"}], headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200
        for key in refused_keys:
            headers = {"Authorization": f"Bearer {key}"}
            response = await native(client, [{"text": "x"}], headers=headers)
            message = refused(response, 401, "InvalidApiKey")
            # The service's words, the same as for any wrong key: the client adds the hint.
            wrong = await native(client, [{"text": "x"}], headers={"Authorization": "Bearer no"})
            assert message == refused(wrong, 401, "InvalidApiKey")
            assert key not in message
            # The gateway is not regional.
            body = {"model": FLASH, "input": "x"}
            assert (await client.post(OPENAI_PATH, json=body, headers=headers)).status_code == 200


def test_region_flags() -> None:
    args = build_parser().parse_args(
        ["--region", "beijing", "--key-region", "sg=singapore", "--key-region", "a==beijing"]
    )
    config = config_from_args(args, {})
    assert config.region == "beijing"
    assert config.key_regions == (("sg", "singapore"), ("a=", "beijing"))
    assert (config.region_of("sg"), config.region_of("a="), config.region_of("x")) == (
        "singapore",
        "beijing",
        None,
    )
    assert "secret" not in repr(
        EmulatorConfig(api_key="secret", key_regions=(("secret-sg", "singapore"),))
    )
    assert "--key-region" in build_parser().format_help()


def test_bad_region_flags_do_not_echo_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (["--key-region", "secret-key=mars"], ["--key-region", "secret-key"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(flags)
        err = capsys.readouterr().err
        assert "--key-region" in err
        assert "secret-key" not in err
    with pytest.raises(ValueError, match="region"):
        EmulatorConfig(region="mars")  # type: ignore[arg-type]


# --- usage per modality ---


async def test_usage_per_modality_in_both_shapes(app: App) -> None:
    contents = [{"text": "a red bicycle"}, {"image": RED_CIRCLE}, {"video": VIDEO}]
    text = estimate_text_tokens("a red bicycle")
    image, video = TIER_TOKENS[DEFAULT_TIER], 8 * FRAME_TOKENS
    async with app(usage_shape="new") as client:
        usage = (await native(client, contents)).json()["usage"]
    assert usage == {
        "input_tokens": text + image + video,
        "input_tokens_details": {
            "text_tokens": text,
            "image_tokens": image,
            "video_tokens": video,
        },
        "output_tokens": 0,
        "total_tokens": text + image + video,
    }
    async with app(usage_shape="old") as client:
        usage = (await native(client, contents)).json()["usage"]
    assert usage == {
        "input_tokens": text,
        "image_tokens": image + video,
        "image_count": 1,
        "duration": 10.0,
    }


# --- the three 429 codes ---


async def test_requests_per_minute_answer_rate_quota(app: App) -> None:
    async with app(rpm=2) as client:
        statuses = [(await native(client, [{"text": "x"}])).status_code for _ in range(2)]
        throttled = await native(client, [{"text": "x"}])
        body = {"model": FLASH, "input": "x"}
        gateway = await client.post(OPENAI_PATH, json=body, headers=AUTH)
    assert statuses == [200, 200]
    refused(
        throttled,
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded",
        "2 requests a minute",
    )
    assert 55 <= int(throttled.headers["retry-after"]) <= 60
    refused(gateway, 429, "Throttling.RateQuota", "Requests rate limit exceeded")


async def test_requests_per_second_are_a_60th_of_the_minute(app: App) -> None:
    async with app(rpm=120) as client:
        answers = [await native(client, [{"text": "x"}]) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    refused(answers[2], 429, "Throttling.RateQuota", "2 requests a second")
    assert answers[2].headers["retry-after"] == "1"
    assert 0 < int(answers[2].headers["retry-after-ms"]) <= 1000


def test_request_windows_over_time() -> None:
    state = LoadState(EmulatorConfig(rpm=120))
    assert [state.admit(0.1 * i) for i in range(2)] == [None, None]
    assert state.admit(0.5) == pytest.approx(0.5)
    assert state.admit(1.0) is None  # a new second
    state = LoadState(EmulatorConfig(rpm=30))  # under one a second: the minute alone counts
    assert all(state.admit(0.01 * i) is None for i in range(30))
    assert state.admit(0.5) == pytest.approx(59.5)


async def test_tokens_per_minute_answer_allocation_quota(app: App) -> None:
    # 6,000 a minute is 100 a second: one 402-token image passes alone, the next must wait.
    async with app(tpm=6000) as client:
        first = await native(client, [{"image": RED_CIRCLE}])
        second = await native(client, [{"text": "x"}])
        stats = (await client.get("/stats", headers=AUTH)).json()
    assert first.status_code == 200
    refused(
        second, 429, "Throttling.AllocationQuota", "Allocated quota exceeded", "100 tokens a second"
    )
    assert second.headers["retry-after"] == "1"
    assert (stats["billed_tokens"], stats["throttled"]) == (TIER_TOKENS[DEFAULT_TIER], 1)


def test_token_windows_over_time() -> None:
    state = LoadState(EmulatorConfig(tpm=600))  # 10 a second
    assert state.take_tokens(8, now=0.0) is None
    throttled = state.take_tokens(5, now=0.5)
    assert throttled is not None and throttled.code == "Throttling.AllocationQuota"
    assert throttled.retry_after == pytest.approx(0.5)
    assert state.take_tokens(5, now=1.0) is None
    # More than a second's share passes alone; the minute then fills up.
    assert state.take_tokens(287, now=2.0) is None
    assert state.take_tokens(300, now=3.0) is None
    late = state.take_tokens(10, now=4.0)
    assert late is not None and "600 tokens a minute" in late.message
    assert late.retry_after == pytest.approx(57.0)  # when the first 8 and 5 tokens have left
    assert state.take_tokens(10, now=60.0) is not None  # only the 8 have left
    assert state.take_tokens(10, now=61.0) is None
    # Larger than the whole minute: it fits once the window is empty.
    huge = state.take_tokens(700, now=62.0)
    assert huge is not None and huge.retry_after == pytest.approx(59.0)
    assert state.take_tokens(700, now=121.0) is None


async def test_a_surge_answers_plain_throttling(app: App) -> None:
    # With a fresh key the average counts as 1 a second: a surge of 2 lets 2 through.
    async with app(surge=2, rpm=1000) as client:
        answers = [await native(client, [{"text": "x"}]) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    refused(answers[2], 429, "Throttling", "Request rate increased too quickly")
    assert answers[2].headers["retry-after"] == "1"


def test_the_surge_guard_follows_the_recent_average() -> None:
    fresh = LoadState(EmulatorConfig(surge=2))
    assert [fresh.admit(0.1 * i) is None for i in range(3)] == [True, True, False]
    # A steady two a second for a minute passes, and raises the allowance: the minute before
    # held 119 requests, about 2 a second, so nearly 4 fit in the next second.
    steady = LoadState(EmulatorConfig(surge=2))
    for i in range(120):
        assert steady.admit(0.5 * i) is None
        steady.release()
    burst = [steady.admit(61.0 + 0.01 * i) for i in range(4)]
    assert burst[:3] == [None, None, None]
    assert burst[3] == pytest.approx(0.97)  # when the first of the burst leaves the second


def test_throttle_flags() -> None:
    args = build_parser().parse_args(["--tpm", "100000", "--surge", "3", "--rpm", "600"])
    config = config_from_args(args, {})
    assert (config.tpm, config.surge, config.rpm) == (100_000, 3.0, 600)
    for flags in (["--tpm", "0"], ["--surge", "0.5"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(flags)
    help_text = build_parser().format_help()
    for flag in ("--tpm", "--surge", "--region"):
        assert flag in help_text
