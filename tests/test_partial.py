"""A request that finally fails: the error names its parts, keeps what finished, and a resumed
call sends only what is missing."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests._core_fakes import (
    FakeService,
    MakeAsyncClient,
    MakeClient,
    Reply,
    Seen,
    error_response,
    text_vector,
)
from tongyi_vision import BadRequestError, InputError, PartialResult, ServerError

TEXTS = [f"text number {i}" for i in range(100)]


def fails_when_carrying(text: str, status: int = 400) -> Reply:
    def fail(seen: Seen) -> httpx.Response | None:
        if {"text": text} in seen.contents:
            return error_response(status, code="DataInspectionFailed" if status == 400 else None)
        return None

    return fail


def successful_texts(service: FakeService) -> Counter[str]:
    """How many times each text reached the service in a request that succeeded."""
    return Counter(c["text"] for c in service.succeeded())


def test_failure_in_the_middle_keeps_the_rest_and_resume_sends_only_the_missing(
    make_client: MakeClient,
) -> None:
    service = FakeService(fail=fails_when_carrying("text number 42"))
    client = make_client(service, max_parts_per_request=10, max_concurrency=1)

    with pytest.raises(BadRequestError) as caught:
        client.embed(TEXTS)
    error = caught.value
    assert error.part_indexes == tuple(range(40, 50))
    assert "parts 40, 41" in str(error)
    partial = error.partial
    assert isinstance(partial, PartialResult)
    # one request at a time: the four before the failure finished, nothing after it started
    assert partial.vectors[:40] == [text_vector(t) for t in TEXTS[:40]]
    assert partial.missing == list(range(40, 100))
    assert partial.done == 40
    assert partial.usage.requests == 5
    first_call_sends = len(service.seen)

    service.fail = None  # the cause is fixed
    result = client.embed(TEXTS, resume=partial)
    assert result.vectors == [text_vector(t) for t in TEXTS]
    resumed = [c["text"] for s in service.seen[first_call_sends:] for c in s.contents]
    assert sorted(resumed) == sorted(TEXTS[40:])
    # the earlier successes were neither sent again nor paid again
    assert result.usage.requests == 6
    assert result.usage.prompt_tokens == 600


def test_failure_with_concurrency_names_its_parts_and_keeps_every_finished_vector(
    make_client: MakeClient,
) -> None:
    service = FakeService(fail=fails_when_carrying("text number 57", status=500))
    client = make_client(service, max_parts_per_request=10, max_concurrency=4, max_retries=2)

    with pytest.raises(ServerError) as caught:
        client.embed(TEXTS)
    error = caught.value
    assert error.part_indexes == tuple(range(50, 60))
    partial = error.partial
    assert partial is not None
    finished = successful_texts(service)
    # exactly the parts of the requests that succeeded have vectors
    assert {TEXTS[i] for i in range(100) if partial.vectors[i] is not None} == set(finished)
    for i, vector in enumerate(partial.vectors):
        if vector is not None:
            assert vector == text_vector(TEXTS[i])
    assert all(count == 1 for count in finished.values())
    assert set(partial.missing) >= set(range(50, 60))

    service.fail = None
    before = len(service.seen)
    result = client.embed(TEXTS, resume=partial)
    assert result.vectors == [text_vector(t) for t in TEXTS]
    resumed = Counter(c["text"] for s in service.seen[before:] for c in s.contents)
    assert set(resumed) == {TEXTS[i] for i in partial.missing}
    assert all(count == 1 for count in resumed.values())
    # over both calls, every part succeeded exactly once
    assert successful_texts(service) == Counter(TEXTS)


async def test_async_failure_and_resume(make_async_client: MakeAsyncClient) -> None:
    service = FakeService(fail=fails_when_carrying("text number 13"))
    client = make_async_client(service, max_parts_per_request=5, max_concurrency=3)
    with pytest.raises(BadRequestError) as caught:
        await client.embed(TEXTS[:30])
    partial = caught.value.partial
    assert caught.value.part_indexes == tuple(range(10, 15))
    assert partial is not None
    assert all(partial.vectors[i] is None for i in range(10, 15))

    service.fail = None
    before = len(service.seen)
    result = await client.embed(TEXTS[:30], resume=partial)
    assert result.vectors == [text_vector(t) for t in TEXTS[:30]]
    resumed = [c["text"] for s in service.seen[before:] for c in s.contents]
    assert sorted(resumed) == sorted(TEXTS[i] for i in partial.missing)


def test_duplicates_get_the_vector_after_resume(make_client: MakeClient) -> None:
    parts = ["same", "other", "same", "bad"]
    service = FakeService(fail=fails_when_carrying("bad"))
    client = make_client(service, max_parts_per_request=2, max_concurrency=1)
    with pytest.raises(BadRequestError) as caught:
        client.embed(parts)
    assert caught.value.part_indexes == (3,)
    partial = caught.value.partial
    assert partial is not None
    assert partial.vectors[0] == partial.vectors[2] == text_vector("same")
    service.fail = None
    result = client.embed(parts, resume=partial)
    assert result.vectors[3] == text_vector("bad")
    assert service.seen[-1].contents == [{"text": "bad"}]


def test_resume_with_other_parts_is_refused_before_sending(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    with pytest.raises(InputError, match="resume holds 2 results but 3 parts"):
        client.embed(["a", "b", "c"], resume=PartialResult(vectors=[None, None]))
    assert service.seen == []


def test_resume_with_everything_done_sends_nothing(
    make_client: MakeClient, service: FakeService
) -> None:
    client = make_client(service)
    done = PartialResult(vectors=[[1.0] * 768, [2.0] * 768])
    result = client.embed(["a", "b"], resume=done)
    assert result.vectors == [[1.0] * 768, [2.0] * 768]
    assert service.seen == []
