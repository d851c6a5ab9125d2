"""Error statuses and bodies become the classes of contract.md's table, with their details."""

from __future__ import annotations

import httpx
import pytest

from tests._core_fakes import FakeService, MakeClient, error_response
from tongyi_vision import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContentModerationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServerError,
    TongyiVisionError,
)
from tongyi_vision.wire.dialects import parse_error

STATUSES = [
    (400, "InvalidParameter", BadRequestError),
    (400, "BadRequest.EmptyInput", BadRequestError),
    (400, "InvalidURL", BadRequestError),
    (400, "DataInspectionFailed", ContentModerationError),
    (401, "InvalidApiKey", AuthenticationError),
    (403, "AccessDenied", PermissionDeniedError),
    (403, "AccessDenied.Unpurchased", PermissionDeniedError),
    (404, "ModelNotFound", NotFoundError),
    (408, "RequestTimeOut", RequestTimeoutError),
    (409, "Conflict", ConflictError),
    (413, "BadRequest.TooLarge", RequestTooLargeError),
    (429, "Throttling", RateLimitError),
    (429, "Throttling.RateQuota", RateLimitError),
    (429, "Throttling.AllocationQuota", RateLimitError),
    (500, "InternalError", ServerError),
    (500, "InternalError.Algo", ServerError),
    (502, None, ServerError),
    (503, None, ServerError),
    (504, None, ServerError),
]


@pytest.mark.parametrize("dialect", ["openai", "dashscope"])
@pytest.mark.parametrize(("status", "code", "cls"), STATUSES)
def test_every_status_becomes_its_class(
    make_client: MakeClient, dialect: str, status: int, code: str | None, cls: type[APIStatusError]
) -> None:
    body_dialect = "openai" if dialect == "openai" else "native"
    service = FakeService(
        dialect=dialect,
        fail=lambda seen: error_response(
            status,
            dialect=body_dialect,
            code=code,
            message=f"the {status} message",
            headers={"x-request-id": "hdr-id"},
        ),
    )
    client = make_client(service, dialect=dialect, max_retries=0)
    with pytest.raises(cls) as caught:
        # a single part, so a 413 cannot be split and surfaces as an error
        client.embed(["one part"])
    error = caught.value
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert error.status == status
    # an openai error without a code is named by its type ("error" in these bodies)
    assert error.code == (code if code or body_dialect == "native" else "error")
    assert error.message == f"the {status} message"
    # the native body names its request id; the openai body does not, so the header's is used
    assert error.request_id == ("req-err" if body_dialect == "native" else "hdr-id")
    assert error.part_indexes == (0,)
    assert f"status {status}" in str(error)
    assert len(service.seen) == 1


@pytest.mark.parametrize("json_type", [True, False])
@pytest.mark.parametrize("body_dialect", ["openai", "native"])
def test_error_bodies_with_and_without_a_json_content_type(
    make_client: MakeClient, json_type: bool, body_dialect: str
) -> None:
    service = FakeService(
        fail=lambda seen: error_response(
            401,
            dialect=body_dialect,
            code="InvalidApiKey",
            message="Invalid API-key provided.",
            json_type=json_type,
        )
    )
    client = make_client(service)
    with pytest.raises(AuthenticationError) as caught:
        client.embed(["x"])
    assert caught.value.code == "InvalidApiKey"
    assert caught.value.message == "Invalid API-key provided."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html><body>Bad Gateway</body></html>", "HTTP 400: <html><body>Bad Gateway"),
        (b"", "HTTP 400: (empty body)"),
        (b"null", "HTTP 400: null"),
        (b"[1,2]", "HTTP 400: [1,2]"),
        (b'{"unrelated": true}', 'HTTP 400: {"unrelated": true}'),
        (b"\xff\xfe not utf-8", "HTTP 400: "),
    ],
)
def test_non_json_or_unknown_error_bodies_keep_a_message(content: bytes, message: str) -> None:
    code, text, request_id = parse_error("openai", 400, content)
    assert code is None
    assert text.startswith(message)
    assert request_id is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"code": 400, "message": "numeric code"}', ("400", "numeric code", None)),
        (b'{"error": "plain string error"}', (None, "plain string error", None)),
        (
            b'{"error": {"message": null, "type": "server_error", "code": null}}',
            ("server_error", "HTTP 500", None),
        ),
        (b'{"code": "X", "message": ["odd"], "request_id": 5}', ("X", "HTTP 500", "5")),
        (
            b'{"error": {"message": "m", "code": 1234}, "request_id": "r"}',
            ("1234", "m", "r"),
        ),
    ],
)
def test_odd_error_bodies_never_break_parsing(payload: bytes, expected: object) -> None:
    assert parse_error("dashscope", 500, payload) == expected


def test_error_body_falls_back_to_the_request_id_header(make_client: MakeClient) -> None:
    service = FakeService(
        fail=lambda seen: httpx.Response(
            404, text="no such model", headers={"x-dashscope-request-id": "hdr-7"}
        )
    )
    client = make_client(service)
    with pytest.raises(NotFoundError) as caught:
        client.embed(["x"])
    assert caught.value.request_id == "hdr-7"
    assert caught.value.message == "HTTP 404: no such model"
    assert "request id hdr-7" in str(caught.value)


def test_other_statuses_are_api_status_errors(make_client: MakeClient) -> None:
    service = FakeService(fail=lambda seen: httpx.Response(402, json={"message": "pay"}))
    client = make_client(service)
    with pytest.raises(APIStatusError) as caught:
        client.embed(["x"])
    assert type(caught.value) is APIStatusError
    assert caught.value.status == 402
    assert len(service.seen) == 1


def test_connection_and_timeout_errors_are_mapped_with_their_cause(make_client: MakeClient) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = make_client(refuse, max_retries=1)
    with pytest.raises(APIConnectionError) as caught:
        client.embed(["x"])
    assert type(caught.value) is APIConnectionError
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "connection refused" in str(caught.value)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = make_client(slow, max_retries=0)
    with pytest.raises(APITimeoutError) as caught_timeout:
        client.embed(["x"])
    assert isinstance(caught_timeout.value.__cause__, httpx.ReadTimeout)


def test_other_httpx_errors_are_wrapped_too(make_client: MakeClient) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.DecodingError("bad gzip", request=request)

    client = make_client(broken, max_retries=0)
    with pytest.raises(APIConnectionError) as caught:
        client.embed(["x"])
    assert isinstance(caught.value.__cause__, httpx.DecodingError)


def test_error_tree() -> None:
    assert issubclass(APIError, TongyiVisionError)
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(ContentModerationError, BadRequestError)
    for _, _, cls in STATUSES:
        assert issubclass(cls, APIStatusError)


def test_errors_survive_pickling() -> None:
    import pickle

    from tongyi_vision import MissingDependencyError, TextTooLongError

    error = AuthenticationError(
        "bad key", status=401, code="InvalidApiKey", request_id="r-1", part_indexes=(2, 3)
    )
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.code, copy.request_id, copy.part_indexes) == (
        401,
        "InvalidApiKey",
        "r-1",
        (2, 3),
    )
    assert str(copy) == str(error)
    too_long = pickle.loads(pickle.dumps(TextTooLongError("is long", part="'x'").at(4)))
    assert (too_long.part_index, too_long.reason, str(too_long)) == (
        4,
        "is long",
        "part 4 'x': is long",
    )
    missing = pickle.loads(pickle.dumps(MissingDependencyError("Pillow", "image", "Resizing")))
    assert "pip install 'tongyi-vision[image]'" in str(missing)
    assert missing.extra == "image"
