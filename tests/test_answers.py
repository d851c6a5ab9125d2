"""Reading answers: placement by index, malformed answers, both usage shapes, cost."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests._core_fakes import FakeService, MakeClient, Seen, text_vector, vector_for
from tongyi_vision import APIResponseValidationError, Image, UnknownModelWarning, Usage
from tongyi_vision.wire.dialects import native_usage, parse_answer
from tongyi_vision.wire.models import NativeUsage


def openai_answer(items: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"object": "list", "data": items, "usage": usage}).encode()


def test_results_placed_by_index_not_array_order(make_client: MakeClient) -> None:
    def reversed_answer(seen: Seen) -> httpx.Response:
        data = [{"index": i, "embedding": vector_for(c)} for i, c in enumerate(seen.contents)][::-1]
        return httpx.Response(200, json={"data": data, "usage": None})

    service = FakeService(fail=reversed_answer)
    client = make_client(service)
    texts = [f"text {i}" for i in range(6)]
    result = client.embed(texts)
    assert result.vectors == [text_vector(t) for t in texts]


def test_native_results_placed_by_index() -> None:
    content = json.dumps(
        {
            "output": {
                "embeddings": [
                    {"index": 2, "embedding": [3.0, 3.0], "type": "image"},
                    {"index": 0, "embedding": [1.0, 1.0], "type": "text"},
                    {"index": 1, "embedding": [2.0, 2.0], "type": "text"},
                ]
            },
            "request_id": "abc",
        }
    ).encode()
    answer = parse_answer(
        "dashscope",
        content,
        count=3,
        dimension=2,
        text_tokens=0,
        has_media=True,
        request_id=None,
    )
    assert answer.vectors == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert answer.request_id == "abc"


MALFORMED = {
    "missing vector": openai_answer([{"index": 0, "embedding": [0.5] * 768}]),
    "duplicated index": openai_answer(
        [{"index": 0, "embedding": [0.5] * 768}, {"index": 0, "embedding": [0.5] * 768}]
    ),
    "index out of range": openai_answer(
        [{"index": 0, "embedding": [0.5] * 768}, {"index": 2, "embedding": [0.5] * 768}]
    ),
    "wrong length": openai_answer(
        [{"index": 0, "embedding": [0.5] * 768}, {"index": 1, "embedding": [0.5] * 767}]
    ),
    "empty vector": openai_answer(
        [{"index": 0, "embedding": [0.5] * 768}, {"index": 1, "embedding": []}]
    ),
    "NaN": b'{"data":[{"index":0,"embedding":[NaN'
    + b",0.5" * 767
    + b']},{"index":1,"embedding":[0.5'
    + b",0.5" * 767
    + b"]}]}",
    "infinity": b'{"data":[{"index":0,"embedding":[Infinity'
    + b",0.5" * 767
    + b']},{"index":1,"embedding":[0.5'
    + b",0.5" * 767
    + b"]}]}",
    "bad JSON": b'{"data": [',
    "no data": b'{"object": "list"}',
    "not an object": b"[1, 2, 3]",
    "empty body": b"",
    "vector of strings": openai_answer(
        [{"index": 0, "embedding": ["a"] * 768}, {"index": 1, "embedding": [0.5] * 768}]
    ),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_answers_raise_after_retries(make_client: MakeClient, body: bytes) -> None:
    service = FakeService(fail=lambda seen: httpx.Response(200, content=body))
    client = make_client(service, max_retries=2)
    with pytest.raises(APIResponseValidationError) as caught:
        client.embed(["a", "b"])
    assert len(service.seen) == 3  # one attempt and two retries
    assert caught.value.part_indexes == (0, 1)
    assert caught.value.partial is not None
    assert caught.value.partial.vectors == [None, None]


def test_malformed_answer_then_good_one_succeeds(make_client: MakeClient) -> None:
    service = FakeService(
        script={1: lambda seen: httpx.Response(200, content=MALFORMED["missing vector"])}
    )
    client = make_client(service)
    result = client.embed(["a", "b"])
    assert result.vectors == [text_vector("a"), text_vector("b")]
    assert result.usage.retries == 1
    assert result.usage.requests == 2


def test_unknown_model_takes_the_size_of_the_first_vector_but_refuses_mixed_sizes(
    make_client: MakeClient,
) -> None:
    mixed = openai_answer([{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}])
    service = FakeService(fail=lambda seen: httpx.Response(200, content=mixed))
    with pytest.warns(UnknownModelWarning, match="tongyi-embedding-vision-next"):
        client = make_client(service, model="tongyi-embedding-vision-next", max_retries=0)
    with pytest.raises(APIResponseValidationError, match="index 1 has 1 dimensions"):
        client.embed(["a", "b"])
    assert client.dimension is None


# --- usage ---------------------------------------------------------------------------


def test_openai_usage_of_a_text_request_is_text(make_client: MakeClient) -> None:
    service = FakeService()
    client = make_client(service)
    result = client.embed(["a", "b", "c"])
    assert result.usage.prompt_tokens == 30
    assert result.usage.total_tokens == 30
    assert result.usage.text_tokens == 30
    assert result.usage.media_tokens == 0
    assert result.usage.requests == 1
    assert result.usage.cost_usd == pytest.approx(30 * 0.09 / 1e6)
    assert not result.usage.modality_estimated


def test_openai_usage_of_a_media_request_is_media(make_client: MakeClient) -> None:
    service = FakeService()
    client = make_client(service)
    result = client.embed([Image("https://example.com/a.png"), Image("https://example.com/b.png")])
    assert result.usage.media_tokens == 20
    assert result.usage.text_tokens == 0
    assert result.usage.cost_usd == pytest.approx(20 * 0.03 / 1e6)


def test_plus_prices_media_like_text(make_client: MakeClient) -> None:
    service = FakeService(dimension=1152)
    client = make_client(service, model="tongyi-embedding-vision-plus")
    result = client.embed([Image("https://example.com/a.png"), "text"])
    assert result.usage.media_tokens == 10
    assert result.usage.text_tokens == 10
    assert result.usage.cost_usd == pytest.approx(20 * 0.09 / 1e6)


def test_native_older_usage_shape() -> None:
    usage = native_usage(
        NativeUsage(input_tokens=12, image_tokens=300, image_count=2, duration=4.5),
        text_tokens=12,
        has_media=True,
    )
    assert usage.prompt_tokens == 312
    assert usage.total_tokens == 312
    assert usage.text_tokens == 12
    assert usage.media_tokens == 300
    assert usage.image_count == 2
    assert usage.video_seconds == 4.5
    assert not usage.modality_estimated


def test_native_newer_usage_shape() -> None:
    usage = native_usage(
        NativeUsage.model_validate(
            {
                "input_tokens": 320,
                "input_tokens_details": {"text_tokens": 20, "image_tokens": 300},
                "output_tokens": 0,
                "total_tokens": 320,
            }
        ),
        text_tokens=0,
        has_media=True,
    )
    assert (usage.prompt_tokens, usage.total_tokens) == (320, 320)
    assert (usage.text_tokens, usage.media_tokens) == (20, 300)


def test_native_total_is_never_below_prompt() -> None:
    usage = native_usage(
        NativeUsage(input_tokens=10, image_tokens=5, total_tokens=3), text_tokens=10, has_media=True
    )
    assert usage.prompt_tokens == 15
    assert usage.total_tokens == 15


def test_native_usage_shapes_through_the_client(make_client: MakeClient) -> None:
    shapes = {
        1: {"input_tokens": 7, "image_tokens": 100, "image_count": 1},
        2: {"input_tokens": 107, "input_tokens_details": {"text_tokens": 7, "image_tokens": 100}},
    }

    def answer(seen: Seen) -> httpx.Response:
        return httpx.Response(
            200,
            # no JSON content type: the client must not care
            content=json.dumps(
                {
                    "output": {
                        "embeddings": [
                            {"index": i, "embedding": vector_for(c)}
                            for i, c in enumerate(seen.contents)
                        ]
                    },
                    "usage": shapes[seen.number],
                }
            ).encode(),
        )

    service = FakeService(dialect="dashscope", fail=answer)
    client = make_client(service, dialect="dashscope", max_concurrency=1)
    first = client.embed([Image("https://example.com/a.png")])
    second = client.embed([Image("https://example.com/b.png")])
    for result in (first, second):
        assert result.usage.prompt_tokens == 107
        assert result.usage.media_tokens == 100
        assert result.usage.text_tokens == 7
        assert result.usage.cost_usd == pytest.approx((7 * 0.09 + 100 * 0.03) / 1e6)
    total = client.usage
    assert total.prompt_tokens == 214
    assert total.requests == 2
    assert total.cost_usd == pytest.approx(first.usage.cost_usd * 2)


def test_cumulative_usage_counts_retries_and_requests(make_client: MakeClient) -> None:
    service = FakeService(script={1: lambda seen: httpx.Response(503)})
    client = make_client(service)
    client.embed(["a"])
    client.embed(["b", "c"])
    assert client.usage.requests == 3
    assert client.usage.retries == 1
    assert client.usage.prompt_tokens == 30
    assert client.usage.cost_usd == pytest.approx(30 * 0.09 / 1e6)


def test_usage_adds_up() -> None:
    total = Usage(prompt_tokens=1, requests=1, cost_usd=0.5) + Usage(
        prompt_tokens=2, retries=3, modality_estimated=True
    )
    assert total == Usage(
        prompt_tokens=3, requests=1, retries=3, cost_usd=0.5, modality_estimated=True
    )


def test_native_newer_shape_without_input_tokens_adds_the_details() -> None:
    usage = native_usage(
        NativeUsage.model_validate(
            {"input_tokens_details": {"text_tokens": 5, "image_tokens": 100}, "total_tokens": 105}
        ),
        text_tokens=5,
        has_media=True,
    )
    assert (usage.prompt_tokens, usage.text_tokens, usage.media_tokens) == (105, 5, 100)


def test_openai_usage_with_only_a_total() -> None:
    content = openai_answer([{"index": 0, "embedding": [1.0]}], usage={"total_tokens": 12})
    answer = parse_answer(
        "openai", content, count=1, dimension=1, text_tokens=4, has_media=False, request_id=None
    )
    assert (answer.usage.prompt_tokens, answer.usage.text_tokens) == (12, 12)
