"""The emulator's wire behaviour, over raw HTTP: paths, bodies, limits, error shapes, the CLI."""

from __future__ import annotations

import base64
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tongyi_vision.wire.models import (
    NATIVE_PATH,
    OPENAI_PATH,
    NativeError,
    NativeResponse,
    OpenAIError,
    OpenAIResponse,
)

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

FLASH = "tongyi-embedding-vision-flash"
PLUS = "tongyi-embedding-vision-plus"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=30) as client:
        yield client


def uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def native(http: httpx.Client, contents: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return http.post(NATIVE_PATH, json={"model": FLASH, "input": {"contents": contents}, **extra})


def openai(http: httpx.Client, input: Any, **extra: Any) -> httpx.Response:
    return http.post(OPENAI_PATH, json={"model": FLASH, "input": input, **extra})


def native_error(response: httpx.Response, status: int, code: str) -> NativeError:
    assert response.status_code == status, response.text
    error = NativeError.model_validate_json(response.content)
    assert error.code == code
    assert error.message
    assert error.request_id
    assert set(response.json()) == {"code", "message", "request_id"}
    return error


def openai_error(response: httpx.Response, status: int, code: str) -> OpenAIError:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    error = OpenAIError.model_validate_json(response.content)
    assert error.error.code == code
    assert error.error.message
    assert error.error.type
    return error


# --- success shapes ---


@pytest.mark.parametrize(
    "body_input",
    [
        "one string",
        ["two", "strings"],
        [{"type": "text", "text": "a"}, {"type": "image", "url": "https://x.test/a.jpg"}],
        [{"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}],
        [{"type": "video", "url": "https://x.test/a.mp4"}],
        {"contents": [{"text": "a"}, {"multi_images": ["https://x.test/a.jpg"]}]},
    ],
)
def test_openai_input_forms(http: httpx.Client, body_input: Any) -> None:
    response = openai(http, body_input)
    assert response.status_code == 200, response.text
    parsed = OpenAIResponse.model_validate_json(response.content)
    count = (
        1
        if isinstance(body_input, str)
        else len(body_input["contents"] if isinstance(body_input, dict) else body_input)
    )
    assert [d.index for d in parsed.data] == list(range(count))
    assert all(len(d.embedding) == 768 for d in parsed.data)
    assert parsed.usage is not None and parsed.usage.prompt_tokens > 0
    assert parsed.model == FLASH
    assert response.json()["object"] == "list"


def test_openai_base64_encoding(http: httpx.Client) -> None:
    floats = openai(http, "same text").json()["data"][0]["embedding"]
    packed = openai(http, "same text", encoding_format="base64").json()["data"][0]["embedding"]
    raw = base64.b64decode(packed)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(decoded) == 768
    assert max(abs(a - b) for a, b in zip(floats, decoded, strict=True)) < 1e-6


def test_native_success_shape(http: httpx.Client) -> None:
    response = native(
        http,
        [{"text": "a"}, {"image": "https://x.test/a.jpg"}, {"video": "https://x.test/a.mp4"}],
        parameters={"dimension": 512, "fps": 0.5, "output_type": "dense"},
    )
    assert response.status_code == 200, response.text
    parsed = NativeResponse.model_validate_json(response.content)
    assert [e.index for e in parsed.output.embeddings] == [0, 1, 2]
    assert [e.type for e in parsed.output.embeddings] == ["text", "image", "video"]
    assert all(len(e.embedding) == 512 for e in parsed.output.embeddings)
    assert parsed.request_id
    usage = parsed.usage
    assert usage is not None and usage.input_tokens_details is not None
    assert usage.total_tokens == usage.input_tokens
    # fps 0.5 over the assumed 10 s: 5 frames of 256 tokens.
    assert response.json()["usage"]["input_tokens_details"]["video_tokens"] == 5 * 256


def test_health_and_stats(emulator: RunningEmulator) -> None:
    assert httpx.get(emulator.base_url + "/healthz").json() == {"status": "ok"}
    stats = emulator.stats()
    assert {"requests", "succeeded", "billed_parts", "billed_tokens", "in_flight"} <= set(stats)


@pytest.mark.parametrize("header", [None, "Bearer wrong"])
def test_stats_need_the_key(emulator: RunningEmulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    native_error(httpx.get(emulator.base_url + "/stats", headers=headers), 401, "InvalidApiKey")


def test_stats_need_no_key_without_api_key_flag(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    server = start_emulator(api_key="")
    assert httpx.get(server.base_url + "/stats").json()["requests"] == 0


# --- auth ---


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dGVzdA==", "Bearer wrong"])
def test_auth_refused_in_both_dialects(emulator: RunningEmulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=emulator.base_url, headers=headers) as anonymous:
        native_error(native(anonymous, [{"text": "a"}]), 401, "InvalidApiKey")
        openai_error(openai(anonymous, "a"), 401, "InvalidApiKey")


def test_any_key_without_api_key_flag(start_emulator: Callable[..., RunningEmulator]) -> None:
    server = start_emulator(api_key="")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer x"}) as http:
        assert openai(http, "a").status_code == 200
    with httpx.Client(base_url=server.base_url) as http:
        openai_error(openai(http, "a"), 401, "InvalidApiKey")


# --- validation, each in both dialects ---


def _image_bytes(make_image: Callable[..., bytes]) -> bytes:
    return make_image(5, (64, 48))


BAD_CONTENTS: list[tuple[str, Callable[[Callable[..., bytes]], list[dict[str, Any]]], str]] = [
    ("empty contents", lambda m: [], "BadRequest.EmptyInput"),
    ("empty text", lambda m: [{"text": "  "}], "BadRequest.EmptyInput"),
    ("text too long", lambda m: [{"text": "a " * 1100}], "InvalidParameter"),
    ("unknown part", lambda m: [{"audio": "https://x.test/a.mp3"}], "InvalidParameter"),
    ("two keys", lambda m: [{"text": "a", "image": "https://x.test/a.jpg"}], "InvalidParameter"),
    ("local path", lambda m: [{"image": "/home/me/cat.jpg"}], "InvalidParameter"),
    ("gif data", lambda m: [{"image": uri(m(1, fmt="GIF"), "image/gif")}], "InvalidParameter"),
    ("png labelled", lambda m: [{"image": uri(b"GIF89a" + bytes(40), "image/png")}],
     "InvalidParameter"),
    ("broken jpeg", lambda m: [{"image": uri(b"\xff\xd8\xff" + bytes(40), "image/jpeg")}],
     "InvalidParameter"),
    ("bad base64", lambda m: [{"image": "data:image/png;base64,@@@@"}], "InvalidParameter"),
    ("too big", lambda m: [{"image": uri(b"\xff\xd8\xff" + bytes(3 * 1024 * 1024), "image/jpeg")}],
     "InvalidParameter"),
    ("9 images", lambda m: [{"image": "https://x.test/a.jpg"}] * 9, "InvalidParameter"),
    ("9 in a group", lambda m: [{"multi_images": ["https://x.test/a.jpg"] * 9}],
     "InvalidParameter"),
    ("8 + 1 images", lambda m: [{"multi_images": ["https://x.test/a.jpg"] * 8},
                                {"image": "https://x.test/b.jpg"}], "InvalidParameter"),
    ("empty group", lambda m: [{"multi_images": []}], "BadRequest.EmptyInput"),
    ("21 parts", lambda m: [{"text": "a"}] * 21, "InvalidParameter"),
    ("video magic", lambda m: [{"video": uri(b"not a video" * 10, "video/mp4")}],
     "InvalidParameter"),
    ("missing file", lambda m: [{"image": "http://media.test/nope.jpg"}], "InvalidURL"),
    ("escape root", lambda m: [{"image": "http://media.test/../../etc/passwd"}], "InvalidURL"),
    ("nul in URL", lambda m: [{"image": "http://media.test/red%00.jpg"}], "InvalidURL"),
    ("folder", lambda m: [{"image": "http://media.test/"}], "InvalidURL"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "contents", "code"), BAD_CONTENTS, ids=[b[0] for b in BAD_CONTENTS]
)
def test_refused_contents(
    http: httpx.Client,
    make_image: Callable[..., bytes],
    name: str,
    contents: Callable[[Callable[..., bytes]], list[dict[str, Any]]],
    code: str,
) -> None:
    body = contents(make_image)
    native_error(native(http, body), 400, code)
    error = openai_error(openai(http, {"contents": body}), 400, code)
    assert error.error.type == "invalid_request_error"


def test_accepted_media(http: httpx.Client, make_image: Callable[..., bytes]) -> None:
    contents: list[dict[str, Any]] = [
        {"image": uri(make_image(1), "image/jpeg")},
        {"image": uri(make_image(2, fmt="PNG"), "image/png")},
        {"image": uri(make_image(3, fmt="BMP"), "image/bmp")},
        {"image": "http://media.test/red.jpg"},
        {"multi_images": ["http://media.test/blue.png", "http://media.test/gray.bmp"]},
        {"image": "https://x.test/not-mapped.webp"},
    ]
    assert native(http, contents).status_code == 200
    assert openai(http, {"contents": contents}).status_code == 200


def test_base64_video_openai_only(http: httpx.Client) -> None:
    video = [{"video": uri(MP4, "video/mp4")}]
    assert openai(http, {"contents": video}).status_code == 200
    native_error(native(http, video), 400, "InvalidParameter")


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"model": "tongyi-embedding-vision-flash"}', b""],
    ids=["bad json", "array", "no input", "empty body"],
)
def test_malformed_bodies(http: httpx.Client, body: bytes) -> None:
    native_error(http.post(NATIVE_PATH, content=body), 400, "InvalidParameter")
    openai_error(http.post(OPENAI_PATH, content=body), 400, "InvalidParameter")


def test_unknown_openai_part_type(http: httpx.Client) -> None:
    openai_error(openai(http, [{"type": "audio", "url": "https://x.test/a"}]), 400,
                 "InvalidParameter")  # fmt: skip


def test_models_and_dimensions(http: httpx.Client) -> None:
    native_error(http.post(NATIVE_PATH, json={"model": "nope", "input": {"contents": [
        {"text": "a"}]}}), 404, "ModelNotFound")  # fmt: skip
    openai_error(http.post(OPENAI_PATH, json={"model": "nope", "input": "a"}), 404,
                 "ModelNotFound")  # fmt: skip
    for model, good, bad in ((FLASH, 64, 1024), (PLUS, 1024, 768)):
        body = {"model": model, "input": {"contents": [{"text": "a"}]}}
        ok = http.post(NATIVE_PATH, json={**body, "parameters": {"dimension": good}})
        assert len(ok.json()["output"]["embeddings"][0]["embedding"]) == good
        refused = http.post(NATIVE_PATH, json={**body, "parameters": {"dimension": bad}})
        native_error(refused, 400, "InvalidParameter")
    openai_error(openai(http, "a", dimensions=512), 400, "InvalidParameter")
    assert openai(http, "a", dimensions=768).status_code == 200
    native_error(native(http, [{"text": "a"}], parameters={"fps": 2}), 400, "InvalidParameter")


def test_body_too_large(start_emulator: Callable[..., RunningEmulator]) -> None:
    server = start_emulator("--max-body-bytes", "2048")
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        native_error(native(http, [{"text": "a" * 3000}]), 413, "BadRequest.TooLarge")


# --- connections ---

# Every wait for the server to close a connection is bounded by this, well above the few
# seconds its timeouts allow.
CLOSE_BOUND = 15.0


def connect(server: RunningEmulator) -> socket.socket:
    url = httpx.URL(server.base_url)
    assert url.host == "127.0.0.1"
    assert url.port is not None
    return socket.create_connection((url.host, url.port), timeout=CLOSE_BOUND)


def read_until_closed(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection; fails the test if it keeps it
    open for CLOSE_BOUND seconds."""
    received = bytearray()
    deadline = time.monotonic() + CLOSE_BOUND
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the server kept the connection open for {CLOSE_BOUND} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {CLOSE_BOUND} s")
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


def test_idle_and_unfinished_connections_are_closed(emulator: RunningEmulator) -> None:
    # The default timeouts: one connection says nothing, one stops mid request line.
    with connect(emulator) as idle, connect(emulator) as unfinished:
        unfinished.sendall(b"GET /healthz HT")
        assert read_until_closed(idle) == b""
        answer = read_until_closed(unfinished)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"RequestTimeOut"' in answer.replace(b" ", b"")


def test_a_head_sent_a_byte_at_a_time_is_cut_off(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    server = start_emulator("--header-timeout", "1")
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        deadline = time.monotonic() + CLOSE_BOUND
        answer = b""
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"x")  # a header line that never ends
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                answer = read_until_closed(sock)
                break
        else:
            pytest.fail(f"the server kept a dripping connection open for {CLOSE_BOUND} s")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def test_keep_alive_ends(start_emulator: Callable[..., RunningEmulator]) -> None:
    server = start_emulator("--keep-alive-timeout", "1")
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: e\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"status":"ok"}')


def test_an_oversized_head_is_refused(emulator: RunningEmulator) -> None:
    with connect(emulator) as sock:
        start = b"GET /healthz HTTP/1.1\r\nx-big: "
        # Under the 64 KiB limit, then over it in one small send the server reads whole, so
        # it closes with nothing of ours unread (which would reset the connection).
        sock.sendall(start + b"a" * (63 * 1024))
        sock.sendall(b"a" * 2048)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code":"BadRequest.TooLarge"' in answer.replace(b" ", b"")


def test_bad_fault_header(http: httpx.Client) -> None:
    response = http.post(
        OPENAI_PATH, json={"model": FLASH, "input": "a"}, headers={"X-Emulator-Fault": "explode"}
    )
    openai_error(response, 400, "InvalidParameter")


def test_random_faults_are_reproducible(start_emulator: Callable[..., RunningEmulator]) -> None:
    def statuses(*flags: str) -> list[int]:
        server = start_emulator(*flags)
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as http:
            return [openai(http, f"t{i}").status_code for i in range(40)]

    first = statuses("--fail-rate", "0.3", "--seed", "3")
    assert first == statuses("--fail-rate", "0.3", "--seed", "3")
    assert first != statuses("--fail-rate", "0.3", "--seed", "4")
    assert set(first) == {200, 500, 503}


# --- the command line ---


def test_cli_first_lines_and_clean_sigterm(start_emulator: Callable[..., RunningEmulator]) -> None:
    server = start_emulator()
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.process.stdout is not None
    assert "not semantic" in server.process.stdout.readline().lower()
    assert server.stop() == 0


def test_cli_clean_sigint(start_emulator: Callable[..., RunningEmulator]) -> None:
    server = start_emulator()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(10) == 0


@pytest.mark.parametrize(
    "flags",
    [["--fail-rate", "2"], ["--latency", "0.3-0.1"], ["--media-root", "nodir"], ["--rpm", "0"]],
)
def test_cli_refuses_bad_flags(flags: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tongyi_vision.emulator", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "error" in done.stderr
    assert done.stdout == ""


def test_serve_subcommand_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tongyi_vision.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    for flag in ("--latency", "--max-concurrency", "--rpm", "--fail-rate", "--usage-shape"):
        assert flag in done.stdout


def test_running_emulator_in_process(tmp_path: Path, make_image: Callable[..., bytes]) -> None:
    import threading

    from tongyi_vision import Client, Image
    from tongyi_vision.emulator import running_emulator

    (tmp_path / "a.png").write_bytes(make_image(8, fmt="PNG"))
    before = {t.name for t in threading.enumerate()}
    with running_emulator(
        api_key="k", latency="0-0.01", media_roots={"http://pics.test/": tmp_path}
    ) as url:
        assert url.startswith("http://127.0.0.1:")
        with Client("k", base_url=url) as client:
            mapped, inline = client.embed(
                [Image("http://pics.test/a.png"), Image(make_image(8, fmt="PNG"))]
            ).vectors
        assert mapped == inline
    assert "tongyi-vision-emulator" not in {t.name for t in threading.enumerate()} - before
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=2)
