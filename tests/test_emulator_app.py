"""Emulator unit tests: vectors, faults, admission, and the ASGI app in memory (no sockets)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import math
import os
import random
import stat
import struct
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tongyi_vision import MissingDependencyError
from tongyi_vision.emulator import EmulatorConfig, create_app, parse_fault_header
from tongyi_vision.emulator._app import ConnectionDropped
from tongyi_vision.emulator._config import parse_latency, parse_media_root, require_server
from tongyi_vision.emulator._faults import Fault, LoadState
from tongyi_vision.emulator._media import _read
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
    NativeRequest,
    NativeResponse,
    OpenAIError,
    OpenAIRequest,
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
    stats = (await http.get("/stats", headers=AUTH)).json()
    assert stats["throttled"] == 1
    assert stats["damaged"] == 2
    assert stats["dropped"] == 1
    assert stats["billed_parts"] == 0


# --- /stats ---


async def test_stats_needs_the_key_when_one_is_set(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = await http.get("/stats", headers=headers)
        assert refused.status_code == 401
        assert set(refused.json()) == {"code", "message", "request_id"}
        assert NativeError.model_validate_json(refused.content).code == "InvalidApiKey"
    allowed = await http.get("/stats", headers=AUTH)
    assert allowed.status_code == 200
    assert "billed_parts" in allowed.json()


async def test_stats_need_no_key_when_none_is_set() -> None:
    transport = httpx.ASGITransport(app=create_app(EmulatorConfig()))
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
        response = await client.get("/stats")
    assert response.status_code == 200
    assert response.json()["requests"] == 0


# --- counts checked before models are built ---

MANY = 200_000


def _no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a request model fail the test: a count check must come first."""

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a request model was built before the counts were checked")

    for model in (OpenAIRequest, NativeRequest):
        for name in ("model_validate", "model_validate_json"):
            monkeypatch.setattr(model, name, refuse)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (OPENAI_PATH, {"model": FLASH, "input": ["a"] * MANY}, "input"),
        (OPENAI_PATH, {"model": FLASH, "input": [{"type": "text", "text": "a"}] * MANY}, "input"),
        (OPENAI_PATH, {"model": FLASH, "input": {"contents": [{"text": "a"}] * MANY}},
         "input.contents"),
        (NATIVE_PATH, {"model": FLASH, "input": {"contents": [{"text": "a"}] * MANY}},
         "input.contents"),
    ],
    ids=["openai strings", "openai parts", "openai contents", "native"],
)  # fmt: skip
async def test_too_many_parts_are_refused_before_models_are_built(
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    body: dict[str, Any],
    param: str,
) -> None:
    _no_models(monkeypatch)
    response = await http.post(path, json=body, headers=AUTH)
    assert response.status_code == 400
    message = f"{MANY} contents in one request; at most 20 are allowed"
    if path == OPENAI_PATH:
        error = OpenAIError.model_validate_json(response.content).error
        assert (error.code, error.message, error.param) == ("InvalidParameter", message, param)
    else:
        native = NativeError.model_validate_json(response.content)
        assert (native.code, native.message) == ("InvalidParameter", message)


async def test_a_huge_group_is_refused_before_models_are_built(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_models(monkeypatch)
    contents = [{"text": "a"}, {"multi_images": ["https://x.test/a.jpg"] * MANY}]
    response = await http.post(
        NATIVE_PATH, json={"model": FLASH, "input": {"contents": contents}}, headers=AUTH
    )
    assert response.status_code == 400
    assert NativeError.model_validate_json(response.content).message == (
        f"multi_images has {MANY} images; at most 8 are allowed"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid request body: Invalid JSON: key must be a string"),
        (b"[" * 100_000, "invalid request body: Invalid JSON: recursion limit exceeded"),
        (b"[]", "invalid request body: Input should be an object"),
        (b'{"model": "m", "input": {"contents": 3}}', "invalid request body: input"),
    ],
)
async def test_bodies_that_are_no_request(
    http: httpx.AsyncClient, body: bytes, message: str
) -> None:
    for path in (OPENAI_PATH, NATIVE_PATH):
        response = await http.post(path, content=body, headers=AUTH)
        assert response.status_code == 400
        text = (
            response.json()["error"]["message"]
            if path == OPENAI_PATH
            else response.json()["message"]
        )
        assert text.startswith(message)


# --- files under a media root ---


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    """A client of an app serving ``http://media.test/`` from a fresh folder, and the folder."""
    app = create_app(EmulatorConfig.from_options(media_roots={"http://media.test/": tmp_path}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client, tmp_path


async def _media_errors(
    client: httpx.AsyncClient, content: dict[str, Any]
) -> list[tuple[int, str, str]]:
    """(status, code, message) of the answers to ``content`` in both dialects."""
    native = await client.post(
        NATIVE_PATH, json={"model": FLASH, "input": {"contents": [content]}}, headers=AUTH
    )
    openai = await client.post(
        OPENAI_PATH, json={"model": FLASH, "input": {"contents": [content]}}, headers=AUTH
    )
    parsed = NativeError.model_validate_json(native.content)
    detail = OpenAIError.model_validate_json(openai.content).error
    return [
        (native.status_code, str(parsed.code), str(parsed.message)),
        (openai.status_code, str(detail.code), str(detail.message)),
    ]


@pytest.mark.parametrize(
    "url",
    ["http://media.test/a%00.png", "http://media.test/%00", "http://media.test///[x/a.png"],
    ids=["nul", "only nul", "bracket"],
)
async def test_unusable_file_names_are_invalid_urls(
    media: tuple[httpx.AsyncClient, Path], url: str
) -> None:
    client, _ = media
    for status, code, message in await _media_errors(client, {"image": url}):
        assert (status, code) == (400, "InvalidURL")
        assert message.startswith(f"URL {url} cannot be downloaded")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
async def test_a_fifo_is_not_read(media: tuple[httpx.AsyncClient, Path]) -> None:
    client, folder = media
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    try:
        answers = await asyncio.wait_for(
            _media_errors(client, {"image": "http://media.test/pipe.png"}), 30
        )
    finally:
        # Should a reader be stuck opening the FIFO, a writer's open sets it free.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    for status, code, message in answers:
        assert (status, code) == (400, "InvalidURL")
        assert message.endswith("(not a regular file)")


async def test_a_folder_is_not_a_file(media: tuple[httpx.AsyncClient, Path]) -> None:
    client, folder = media
    (folder / "album").mkdir()
    for status, code, message in await _media_errors(client, {"image": "http://media.test/album"}):
        assert (status, code) == (400, "InvalidURL")
        assert message.endswith("(not a regular file)")


@pytest.mark.parametrize(
    ("kind", "limit"), [("image", 3 * 1024 * 1024), ("video", 10 * 1024 * 1024)]
)
async def test_an_oversized_file_is_refused_unread(
    media: tuple[httpx.AsyncClient, Path], monkeypatch: pytest.MonkeyPatch, kind: str, limit: int
) -> None:
    client, folder = media
    size = 600 * 1024 * 1024
    with (folder / "huge.bin").open("wb") as file:
        file.truncate(size)  # sparse: no disk space, no time

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("the whole file was read before its size was checked")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    content = {kind: "http://media.test/huge.bin"}
    for status, code, message in await _media_errors(client, content):
        assert (status, code) == (400, "InvalidParameter")
        assert message == f"{kind} is {size:,} bytes, over the {limit:,}-byte limit"


def test_a_file_that_grew_since_its_stat_is_read_one_byte_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.png"
    path.write_bytes(bytes(1000))
    small = os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, 10, 0, 0, 0))
    monkeypatch.setattr(Path, "stat", lambda self, **kwargs: small)
    data = _read(path, "http://media.test/growing.png", "image", 100, "input.contents[0]")
    assert len(data) == 101


@pytest.mark.parametrize(("module", "package"), [("starlette", "starlette"), ("PIL", "Pillow")])
def test_missing_server_packages_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError) as caught:
        require_server()
    assert caught.value.package == package
    assert "tongyi-vision[emulator]" in str(caught.value)
