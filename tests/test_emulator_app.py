"""Emulator unit tests: vectors, faults, admission, and the ASGI app in memory (no sockets)."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import random
import struct
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from tongyi_vision import MissingDependencyError
from tongyi_vision.emulator import EmulatorConfig, create_app, parse_fault_header
from tongyi_vision.emulator._app import ConnectionDropped
from tongyi_vision.emulator._config import parse_latency, parse_media_root, require_server
from tongyi_vision.emulator._faults import Fault, LoadState
from tongyi_vision.emulator._vectors import (
    mean_vector,
    pixel_vector,
    seeded_vector,
    text_vector,
    thumbnail,
)
from tongyi_vision.wire.limits import estimate_text_tokens, image_tokens_for_pixels
from tongyi_vision.wire.models import (
    NATIVE_PATH,
    OPENAI_PATH,
    NativeError,
    NativeResponse,
    OpenAIError,
    OpenAIResponse,
)

FLASH = "tongyi-embedding-vision-flash"
AUTH = {"Authorization": "Bearer k"}


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def picture(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "JPEG", **save: Any) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    grid = Image.new("RGB", (8, 6))
    grid.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48)])
    buffer = io.BytesIO()
    grid.resize(size, Image.Resampling.BICUBIC).save(buffer, fmt, **save)
    return buffer.getvalue()


def image_vector(data: bytes, dimension: int = 768) -> list[float]:
    return pixel_vector(thumbnail(data, 10**8)[2], dimension)


# --- vectors ---


def test_text_vectors_are_fixed_across_processes_and_machines() -> None:
    # A digest computed once: hashlib features and IEEE arithmetic make it the same everywhere.
    vector = text_vector("hello world", 768)
    digest = hashlib.sha256(struct.pack("<768d", *vector)).hexdigest()
    assert digest == "a82e8422ba6a5ca0dbd49711037bb838b468fc44a415a83702a17a053a856aae"


@pytest.mark.parametrize("dimension", [64, 128, 256, 512, 768, 1024, 1152])
def test_vectors_are_unit_length(dimension: int) -> None:
    for vector in (
        text_vector("a red bicycle", dimension),
        text_vector("!!!", dimension),
        text_vector("一辆红色的自行车", dimension),
        image_vector(picture(1), dimension),
        seeded_vector("image-url", b"https://x.test/a.jpg", dimension),
    ):
        assert len(vector) == dimension
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-12)


def test_texts_sharing_words_are_closer() -> None:
    anchor = text_vector("a red bicycle in the rain", 768)
    assert cosine(anchor, text_vector("a red bicycle in the sun", 768)) > 0.5
    assert abs(cosine(anchor, text_vector("quarterly revenue of the company", 768))) < 0.2
    chinese = text_vector("红色的自行车", 768)
    assert cosine(chinese, text_vector("一辆红色的自行车", 768)) > 0.6
    assert abs(cosine(chinese, text_vector("公司季度收入", 768))) < 0.2


def test_resized_and_reencoded_images_stay_close() -> None:
    from PIL import Image

    original = picture(3, (800, 600))
    smaller = io.BytesIO()
    Image.open(io.BytesIO(original)).resize((200, 150)).save(smaller, "BMP")
    rough = io.BytesIO()
    Image.open(io.BytesIO(original)).save(rough, "JPEG", quality=30)
    base = image_vector(original)
    assert cosine(base, image_vector(smaller.getvalue())) > 0.9
    assert cosine(base, image_vector(rough.getvalue())) > 0.9
    others = [abs(cosine(base, image_vector(picture(seed)))) for seed in range(10, 20)]
    assert sum(others) / len(others) < 0.3


def test_flat_images_and_groups() -> None:
    from PIL import Image

    def flat(colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(buffer, "PNG")
        return buffer.getvalue()

    red, blue = image_vector(flat((255, 0, 0))), image_vector(flat((0, 0, 255)))
    assert red == image_vector(flat((255, 0, 0)))
    assert cosine(red, blue) < 0.5
    # A flat grey has no deviation from its mean at all: its vector is seeded by the grey level.
    grey, white = image_vector(flat((128, 128, 128))), image_vector(flat((255, 255, 255)))
    assert grey == image_vector(flat((128, 128, 128)))
    assert abs(cosine(grey, white)) < 0.2
    photo = image_vector(picture(7))
    group = mean_vector([red, photo], 768)
    assert cosine(group, red) > 0.5 and cosine(group, photo) > 0.5


def test_thumbnail_reports_size_and_refuses_bombs() -> None:
    width, height, pixels = thumbnail(picture(1, (300, 200), "PNG"), 10**8)
    assert (width, height, len(pixels)) == (300, 200, 16 * 16 * 3)
    with pytest.raises(ValueError):
        thumbnail(picture(1, (300, 200), "PNG"), 1000)


# --- configuration and faults ---


def test_parse_latency() -> None:
    assert parse_latency("0.1") == (0.1, 0.1)
    assert parse_latency("0.05-0.2") == (0.05, 0.2)
    assert parse_latency(0) == (0.0, 0.0)
    for bad in ("-1", "0.3-0.1", "soon", "nan"):
        with pytest.raises(ValueError):
            parse_latency(bad)


def test_parse_media_root(tmp_path: Any) -> None:
    prefix, folder = parse_media_root(f"http://media.test/a=b/={tmp_path}")
    assert prefix == "http://media.test/a=b/"
    assert folder == tmp_path
    for bad in ("nodir", "=x", "ftp://x/=y", "http://x/="):
        with pytest.raises(ValueError):
            parse_media_root(bad)


@pytest.mark.parametrize(
    "options",
    [
        {"fail_rate": 1.5},
        {"fail_rate": 0.6, "drop_rate": 0.6},
        {"max_concurrency": 0},
        {"rps": 0},
        {"usage_shape": "newest"},
        {"api_key": " "},
    ],
)
def test_config_refuses_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**options)


def test_fault_header() -> None:
    assert parse_fault_header("status=429;retry_after=0.5") == Fault(status=429, retry_after=0.5)
    assert parse_fault_header("drop") == Fault(drop=True)
    assert parse_fault_header("latency=0.2, wrong-count; id=abc") == Fault(
        wrong_count=True, latency=0.2
    )
    assert parse_fault_header("status=400;code=DataInspectionFailed;times=2") == Fault(
        status=400, code="DataInspectionFailed", times=2
    )
    for bad in ("status=200", "status=x", "explode", "latency=-1", "times=-2", "drop=1"):
        with pytest.raises(ValueError):
            parse_fault_header(bad)


def test_fault_times_count_per_header_value() -> None:
    state = LoadState(EmulatorConfig())
    seen = [state.header_fault("status=503;times=2;id=a") for _ in range(3)]
    assert [f is not None for f in seen] == [True, True, False]
    assert state.header_fault("status=503;times=2;id=b") is not None


def test_random_faults_follow_the_seed() -> None:
    def draws(seed: int) -> list[Fault | None]:
        state = LoadState(
            EmulatorConfig(fail_rate=0.2, drop_rate=0.1, malformed_rate=0.1, seed=seed)
        )
        return [state.random_fault() for _ in range(200)]

    first = draws(1)
    assert first == draws(1)
    assert first != draws(2)
    failed = sum(1 for f in first if f is not None and f.status in (500, 503))
    assert 20 <= failed <= 60


def test_admission_windows() -> None:
    state = LoadState(EmulatorConfig(max_concurrency=2, retry_after=1.5))
    assert state.admit(0.0) is None and state.admit(0.0) is None
    assert state.admit(0.0) == 1.5
    state.release()
    assert state.admit(0.0) is None

    state = LoadState(EmulatorConfig(rpm=2))
    assert state.admit(0.0) is None
    state.release()
    assert state.admit(10.0) is None
    state.release()
    assert state.admit(20.0) == pytest.approx(40.0)
    assert state.admit(60.5) is None

    state = LoadState(EmulatorConfig(rps=0.5))
    assert state.admit(0.0) is None
    state.release()
    assert state.admit(1.0) == pytest.approx(1.0)
    assert state.admit(2.0) is None


# --- the app, in memory ---


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(EmulatorConfig(api_key="k"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def test_openai_answer(http: httpx.AsyncClient) -> None:
    body = {"model": FLASH, "input": ["hello world", "second"]}
    response = await http.post(OPENAI_PATH, json=body, headers=AUTH)
    parsed = OpenAIResponse.model_validate_json(response.content)
    assert [d.embedding for d in parsed.data] == [
        text_vector("hello world", 768),
        text_vector("second", 768),
    ]
    assert parsed.usage is not None
    assert parsed.usage.prompt_tokens == estimate_text_tokens("hello world") + estimate_text_tokens(
        "second"
    )
    assert response.headers["x-request-id"]


async def test_native_answer_and_usage_shapes() -> None:
    image = picture(5)
    contents = [{"text": "hi there"}, {"image": data_uri(image)}]
    expected_image = image_tokens_for_pixels(320, 240)
    for shape in ("new", "old"):
        app = create_app(EmulatorConfig(usage_shape=shape))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
            response = await client.post(
                NATIVE_PATH,
                json={"model": FLASH, "input": {"contents": contents}},
                headers={"Authorization": "Bearer anything"},
            )
        parsed = NativeResponse.model_validate_json(response.content)
        assert parsed.output.embeddings[1].embedding == image_vector(image)
        usage = response.json()["usage"]
        text = estimate_text_tokens("hi there")
        if shape == "new":
            assert usage == {
                "input_tokens": text + expected_image,
                "input_tokens_details": {"text_tokens": text, "image_tokens": expected_image},
                "output_tokens": 0,
                "total_tokens": text + expected_image,
            }
        else:
            assert usage == {"input_tokens": text, "image_tokens": expected_image, "image_count": 1}


async def test_error_bodies(http: httpx.AsyncClient) -> None:
    response = await http.post(OPENAI_PATH, json={"model": FLASH, "input": ""}, headers=AUTH)
    assert response.status_code == 400
    assert OpenAIError.model_validate_json(response.content).error.code == "BadRequest.EmptyInput"
    response = await http.post(NATIVE_PATH, json={"model": FLASH, "input": {"contents": []}})
    assert response.status_code == 401
    assert NativeError.model_validate_json(response.content).code == "InvalidApiKey"


async def test_injected_faults(http: httpx.AsyncClient) -> None:
    body = {"model": FLASH, "input": ["a", "b"]}
    throttled = await http.post(
        OPENAI_PATH, json=body, headers={**AUTH, "X-Emulator-Fault": "status=429;retry_after=1.5"}
    )
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "2"
    assert throttled.headers["retry-after-ms"] == "1500"
    wrong = await http.post(
        OPENAI_PATH, json=body, headers={**AUTH, "X-Emulator-Fault": "wrong_count"}
    )
    assert len(wrong.json()["data"]) == 1
    truncated = await http.post(
        OPENAI_PATH, json=body, headers={**AUTH, "X-Emulator-Fault": "truncate"}
    )
    with pytest.raises(ValueError):
        truncated.json()
    # Without a socket there is no connection to drop: the app says so instead.
    with pytest.raises(ConnectionDropped):
        await http.post(OPENAI_PATH, json=body, headers={**AUTH, "X-Emulator-Fault": "drop"})
    stats = (await http.get("/stats")).json()
    assert stats["throttled"] == 1
    assert stats["damaged"] == 2
    assert stats["dropped"] == 1
    assert stats["billed_parts"] == 0


@pytest.mark.parametrize(("module", "package"), [("starlette", "starlette"), ("PIL", "Pillow")])
def test_missing_server_packages_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError) as caught:
        require_server()
    assert caught.value.package == package
    assert "tongyi-vision[emulator]" in str(caught.value)
