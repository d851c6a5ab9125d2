"""The API key never shows: not in a repr, a str, an error, a log record or a pickle."""

from __future__ import annotations

import copy
import logging
import pickle

import httpx
import pytest

from tests._core_fakes import KEY, FakeService, MakeClient, Reply, error_response
from tongyi_vision import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    RateLimitError,
    ServerError,
)
from tongyi_vision.engine.config import Secret, resolve_settings


def test_clients_repr_and_str_hide_the_key(make_client: MakeClient, service: FakeService) -> None:
    for client in (make_client(service), AsyncClient(api_key=KEY)):
        for text in (repr(client), str(client)):
            assert KEY not in text
            assert "api_key='**********'" in text
            assert "tongyi-embedding-vision-flash" in text


def test_settings_and_secret_hide_the_key() -> None:
    settings = resolve_settings(
        api_key=KEY, base_url=None, model=None, dialect=None, dimension=None
    )
    assert KEY not in repr(settings)
    assert KEY not in str(settings.api_key)
    assert KEY not in repr(settings.api_key)
    assert settings.api_key == Secret(KEY)


def test_an_error_echoing_the_key_is_redacted(make_client: MakeClient) -> None:
    service = FakeService(
        fail=lambda seen: error_response(
            401, code="InvalidApiKey", message=f"Invalid API-key provided: {KEY}"
        )
    )
    client = make_client(service)
    with pytest.raises(AuthenticationError) as caught:
        client.embed(["x"])
    error = caught.value
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        assert KEY not in text
    assert "Invalid API-key provided: **********" in str(error)


def test_a_short_key_is_masked_as_a_word_not_inside_other_words(make_client: MakeClient) -> None:
    # A one-letter key (as in a quick test) must not mangle the service's words, or the
    # message read for the kind of rate limit: "quickly" stays "quickly".
    service = FakeService(
        fail=lambda seen: error_response(
            429, code="Throttling", message="Request rate increased too quickly (key k)"
        )
    )
    client = make_client(service, api_key="k", max_retries=0)
    with pytest.raises(RateLimitError) as caught:
        client.embed(["x"])
    assert "too quickly (key **********)" in str(caught.value)
    assert caught.value.limit == "surge"


def test_a_non_json_error_body_echoing_the_key_is_redacted(make_client: MakeClient) -> None:
    service = FakeService(fail=lambda seen: httpx.Response(500, text=f"upstream said {KEY}"))
    client = make_client(service, max_retries=0)
    with pytest.raises(ServerError) as caught:
        client.embed(["x"])
    assert KEY not in str(caught.value)


def test_a_connection_error_echoing_the_key_is_redacted(make_client: MakeClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused Bearer {KEY}", request=request)

    client = make_client(handler, max_retries=0)
    with pytest.raises(APIConnectionError) as caught:
        client.embed(["x"])
    assert KEY not in str(caught.value)


def test_log_records_never_hold_the_key(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    scripted: dict[int, Reply] = {
        1: lambda seen: error_response(429, message=f"slow down {KEY}"),
        2: lambda seen: error_response(503, message=f"busy {KEY}"),
    }
    service = FakeService(script=scripted)
    client = make_client(service)
    with caplog.at_level(logging.DEBUG):
        client.embed(["x"])
        failing = make_client(
            FakeService(fail=lambda seen: error_response(401, message=f"bad key {KEY}"))
        )
        with pytest.raises(AuthenticationError):
            failing.embed(["x"])
    retry_records = [r for r in caplog.records if r.name == "tongyi_vision"]
    assert len(retry_records) == 2  # the two retries were logged...
    for record in caplog.records:
        assert KEY not in record.getMessage()  # ...without the key
        assert KEY not in caplog.text


def test_clients_cannot_be_pickled_or_copied(make_client: MakeClient, service: FakeService) -> None:
    for client in (make_client(service), AsyncClient(api_key=KEY)):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(client)
        with pytest.raises(TypeError):
            copy.copy(client)


def test_secret_and_settings_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(KEY))
    settings = resolve_settings(
        api_key=KEY, base_url=None, model=None, dialect=None, dimension=None
    )
    with pytest.raises(TypeError):
        pickle.dumps(settings)


def test_errors_pickle_without_the_key(make_client: MakeClient) -> None:
    service = FakeService(fail=lambda seen: error_response(401, message=f"echo {KEY}"))
    client = make_client(service)
    with pytest.raises(AuthenticationError) as caught:
        client.embed(["x"])
    data = pickle.dumps(caught.value)
    assert KEY.encode() not in data


def test_client_made_from_environment_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    client = Client()
    try:
        assert KEY not in repr(client)
    finally:
        client.close()
