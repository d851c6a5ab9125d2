"""The public surface: progress reporting, and sync and async clients that match."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import httpx
import pytest

import tongyi_vision
from tests._core_fakes import FakeService, MakeAsyncClient, MakeClient, error_response
from tongyi_vision import AsyncClient, Client, ProgressEvent


def test_progress_events_follow_the_call(make_client: MakeClient) -> None:
    service = FakeService(script={2: lambda seen: error_response(503)})
    events: list[ProgressEvent] = []
    client = make_client(service, max_parts_per_request=4, max_concurrency=1)
    result = client.embed([f"t{i}" for i in range(10)] + ["t0"], progress=events.append)

    assert [dataclasses.replace(e, vectors={}) for e in events] == [
        ProgressEvent(parts_done=5, parts_total=11, requests_done=1, requests_total=3, retries=0),
        # the second request was refused once and retried
        ProgressEvent(parts_done=5, parts_total=11, requests_done=1, requests_total=3, retries=1),
        ProgressEvent(parts_done=9, parts_total=11, requests_done=2, requests_total=3, retries=1),
        ProgressEvent(parts_done=11, parts_total=11, requests_done=3, requests_total=3, retries=1),
    ]
    # Each event carries what its request finished, by position (the duplicate "t0" too).
    assert [sorted(e.vectors) for e in events] == [[0, 1, 2, 3, 10], [], [4, 5, 6, 7], [8, 9]]
    assert all(result.vectors[i] == v for e in events for i, v in e.vectors.items())


def test_client_and_call_progress_callbacks_both_hear(
    make_client: MakeClient, service: FakeService
) -> None:
    heard: list[str] = []
    client = make_client(service, progress=lambda e: heard.append("client"))
    client.embed(["a"], progress=lambda e: heard.append("call"))
    assert heard == ["call", "client"]


async def test_async_progress(make_async_client: MakeAsyncClient, service: FakeService) -> None:
    events: list[ProgressEvent] = []
    client = make_async_client(service, max_parts_per_request=2)
    await client.embed(["a", "b", "c", "d", "e"], progress=events.append)
    assert [e.parts_done for e in events] == sorted(e.parts_done for e in events)
    assert events[-1].parts_done == events[-1].parts_total == 5
    assert events[-1].requests_done == 3


def test_progress_bar(
    make_client: MakeClient, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(service, show_progress=True, max_parts_per_request=1)
    result = client.embed(["a", "b", "c"])
    assert len(result.vectors) == 3
    err = capsys.readouterr().err
    assert "embedding" in err
    assert "3/3" in err


def test_a_progress_callback_that_raises_stops_the_call(
    make_client: MakeClient, service: FakeService
) -> None:
    def explode(event: ProgressEvent) -> None:
        raise RuntimeError("callback broke")

    client = make_client(service, max_parts_per_request=1, max_concurrency=2)
    with pytest.raises(RuntimeError, match="callback broke"):
        client.embed(["a", "b", "c", "d"], progress=explode)


PAIRS = [
    ("embed", "embed"),
    ("embed_texts", "embed_texts"),
    ("embed_images", "embed_images"),
    ("embed_videos", "embed_videos"),
    ("close", "aclose"),
    ("__enter__", "__aenter__"),
    ("__exit__", "__aexit__"),
]


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def test_sync_and_async_clients_have_the_same_public_methods() -> None:
    # The sync client makes its async twin; the async one also closes idle loops from sync code.
    assert public_methods(Client) - {"close", "async_client"} == public_methods(AsyncClient) - {
        "aclose",
        "close",
    }
    assert {"embed", "embed_texts", "embed_images", "embed_videos"} <= public_methods(Client)


@pytest.mark.parametrize(("sync_name", "async_name"), PAIRS)
def test_sync_and_async_signatures_match(sync_name: str, async_name: str) -> None:
    sync = inspect.signature(getattr(Client, sync_name))
    asynchronous = inspect.signature(getattr(AsyncClient, async_name))
    assert list(sync.parameters.values()) == list(asynchronous.parameters.values())
    assert inspect.iscoroutinefunction(getattr(AsyncClient, async_name))
    assert not inspect.iscoroutinefunction(getattr(Client, sync_name))


def test_constructors_match_except_for_the_http_client() -> None:
    # One constructor for both, generic in the HTTP client it takes.
    assert Client.__init__ is AsyncClient.__init__  # type: ignore[comparison-overlap]
    assert typing.get_args(Client.__orig_bases__[0]) == (httpx.Client,)  # type: ignore[attr-defined]
    assert typing.get_args(AsyncClient.__orig_bases__[0]) == (httpx.AsyncClient,)  # type: ignore[attr-defined]
    sync = dict(inspect.signature(Client.__init__).parameters)
    assert sync.pop("http_client").annotation == "HTTP | None"
    for name in ("api_key", "base_url", "model", "dialect", "dimension", "timeout"):
        assert name in sync
    for name in ("max_retries", "max_concurrency"):
        assert name in sync


def test_public_names_are_exported_and_documented() -> None:
    for name in tongyi_vision.__all__:
        value = getattr(tongyi_vision, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
    for name in ("embed", "embed_texts", "embed_images", "embed_videos"):
        assert inspect.getdoc(getattr(Client, name))
        assert inspect.getdoc(getattr(AsyncClient, name))


def test_vectors_are_plain_python_floats(make_client: MakeClient) -> None:
    service = FakeService(
        fail=lambda seen: httpx.Response(
            200, json={"data": [{"index": 0, "embedding": [1] * 768}], "usage": None}
        )
    )
    client = make_client(service)
    (vector,) = client.embed(["a"]).vectors
    assert all(type(x) is float for x in vector)


async def test_an_async_progress_callback_is_refused_before_sending(
    make_async_client: MakeAsyncClient, service: FakeService
) -> None:
    async def report(event: ProgressEvent) -> None:
        raise AssertionError("never called")

    client = make_async_client(service)
    with pytest.raises(TypeError, match="plain function"):
        await client.embed(["a"], progress=report)  # type: ignore[arg-type]
    assert service.seen == []


def test_unit_tests_cannot_open_network_sockets() -> None:
    import socket

    from pytest_socket import SocketBlockedError

    # pytest-socket also warns as it refuses; warnings are errors here, so say it is expected.
    with pytest.warns(UserWarning, match="socket"), pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    left, right = socket.socketpair()  # what asyncio needs stays allowed
    left.close()
    right.close()


PUBLIC_MODULES = (
    "tongyi_vision",
    "tongyi_vision.langchain",
    "tongyi_vision.llama_index",
    "tongyi_vision.emulator",
    "tongyi_vision.samples",
    "tongyi_vision.ui",
    "tongyi_vision.ray",
)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_report_the_module_users_import_them_from(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__ in PUBLIC_MODULES, f"{module_name}.{name}: {value.__module__}"


def test_public_classes_still_pickle_under_their_public_module() -> None:
    import pickle

    import tongyi_vision

    usage = tongyi_vision.Usage(prompt_tokens=3, total_tokens=3)
    assert tongyi_vision.Usage.__module__ == "tongyi_vision"
    assert pickle.loads(pickle.dumps(usage)) == usage
    error = pickle.loads(pickle.dumps(tongyi_vision.EmptyInputError("text is empty", part="''")))
    assert isinstance(error, tongyi_vision.EmptyInputError) and "text is empty" in str(error)
