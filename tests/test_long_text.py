"""Texts over the token limit: split into pieces and averaged (the default), truncated, or
refused; what goes over the wire, what comes back, and what a failed call keeps."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from tests._core_fakes import (
    FakeService,
    MakeAsyncClient,
    MakeClient,
    error_response,
    text_vector,
)
from tongyi_vision import (
    APIStatusError,
    Client,
    ConfigurationError,
    PartialResult,
    ProgressEvent,
    TextTooLongError,
    estimate_text_tokens,
)
from tongyi_vision.engine.pieces import weighted_mean
from tongyi_vision.media.texts import split_text, truncate_text

# 20,000 characters of English prose in paragraphs, as a loader hands a whole document over.
SENTENCES = [
    "The river bends twice before it reaches the old mill, and the path follows it.",
    "Walkers stop at the bridge to watch herons fishing in the shallow water below.",
    "In spring the meadows flood, and the town keeps boats ready by the church.",
]
LONG = "\n\n".join(
    f"Paragraph {p}. " + " ".join(SENTENCES[(p + s) % 3] for s in range(8)) for p in range(32)
)[:20_000]


def sent_texts(service: FakeService) -> list[str]:
    return [c["text"] for c in service.parts_sent]


def expected_mean(pieces: list[str]) -> list[float]:
    return weighted_mean(
        [text_vector(p) for p in pieces], [estimate_text_tokens(p) for p in pieces]
    )


def test_a_long_text_is_split_by_default_and_its_vector_is_the_weighted_mean(
    make_client: MakeClient, service: FakeService
) -> None:
    assert estimate_text_tokens(LONG) > 4 * 1024
    client = make_client(service)
    result = client.embed(["short", LONG])

    pieces = split_text(LONG)
    assert len(pieces) >= 5
    sent = sent_texts(service)
    assert sorted(sent) == sorted(["short", *pieces])
    assert all(estimate_text_tokens(t) <= 1024 for t in sent)
    assert result.vectors[0] == text_vector("short")
    assert result.vectors[1] == pytest.approx(expected_mean(pieces))
    assert math.fsum(x * x for x in result.vectors[1]) == pytest.approx(1.0)
    assert len(result.vectors) == 2
    # every piece is billed: the fake bills 10 tokens a part
    assert result.usage.pieces == len(pieces)
    assert result.usage.prompt_tokens == 10 * (1 + len(pieces))
    assert client.usage.pieces == len(pieces)


def test_equal_long_texts_and_equal_pieces_are_sent_once(
    make_client: MakeClient, service: FakeService
) -> None:
    result = make_client(service).embed([LONG, LONG])
    pieces = split_text(LONG)
    assert len(sent_texts(service)) == len(pieces)
    assert result.vectors[0] == result.vectors[1]
    assert result.vectors[0] is not result.vectors[1]
    assert result.usage.pieces == len(pieces)


def test_truncate_sends_the_longest_start_within_the_limit(
    make_client: MakeClient, service: FakeService
) -> None:
    result = make_client(service, long_text="truncate").embed([LONG, "short"])
    sent = sent_texts(service)
    assert len(sent) == 2
    start = sent[0]
    assert LONG.startswith(start)
    assert estimate_text_tokens(start) <= 1024
    # no word cut in two, and nothing more of the text would fit
    assert LONG[len(start)] in " \n"
    assert estimate_text_tokens(LONG[: len(start) + 40]) > 1024
    assert start == truncate_text(LONG)
    assert result.vectors[0] == text_vector(start)
    assert result.usage.truncated == 1
    assert result.usage.pieces == 0


def test_error_refuses_before_sending(make_client: MakeClient, service: FakeService) -> None:
    client = make_client(service, long_text="error")
    with pytest.raises(TextTooLongError) as caught:
        client.embed(["short", LONG])
    assert caught.value.part_index == 1
    assert service.seen == []


def test_a_text_within_the_limit_is_sent_as_it_is(
    make_client: MakeClient, service: FakeService
) -> None:
    text = "a " * 1024
    assert estimate_text_tokens(text) == 1024
    for mode in ("split", "truncate"):
        make_client(service, long_text=mode).embed([text])
    assert sent_texts(service) == [text, text]


@pytest.mark.parametrize("mode", ["average", "", None, True])
def test_an_unknown_mode_is_a_configuration_error(make_client: MakeClient, mode: object) -> None:
    with pytest.raises(ConfigurationError, match="long_text must be"):
        Client("k", long_text=mode)  # type: ignore[arg-type]


def test_progress_shows_the_text_once_all_its_pieces_are_back(
    make_client: MakeClient, service: FakeService
) -> None:
    events: list[ProgressEvent] = []
    client = make_client(service, max_parts_per_request=2)
    result = client.embed(["short", LONG], progress=events.append)
    seen: dict[int, list[float]] = {}
    for event in events:
        assert set(event.vectors) <= {0, 1}  # the caller's indexes, never a piece's slot
        for index, vector in event.vectors.items():
            assert index not in seen
            seen[index] = vector
    assert seen == {0: result.vectors[0], 1: result.vectors[1]}
    assert events[-1].parts_done == events[-1].parts_total


def test_a_failed_call_keeps_its_pieces_and_a_resume_sends_only_the_missing_ones(
    make_client: MakeClient, service: FakeService
) -> None:
    pieces = split_text(LONG)
    service.script[3] = lambda seen: error_response(403, code="AccessDenied")
    client = make_client(service, max_parts_per_request=1, max_concurrency=1)
    with pytest.raises(APIStatusError) as caught:
        client.embed([LONG])
    partial = caught.value.partial
    assert isinstance(partial, PartialResult)
    assert caught.value.part_indexes == (0,)
    assert partial.vectors == [None]
    kept = partial.pieces[0]
    assert sorted(kept) == [0, 1]  # the first two pieces came back before the refusal

    service.seen.clear()
    service.script.clear()
    result = client.embed([LONG], resume=partial)
    assert sent_texts(service) == pieces[2:]
    assert result.vectors[0] == pytest.approx(expected_mean(pieces))
    assert result.usage.pieces == len(pieces) - 2


def test_skip_names_the_text_when_one_of_its_pieces_is_refused(
    make_client: MakeClient, service: FakeService
) -> None:
    pieces = split_text(LONG)

    def moderate(seen: object) -> httpx.Response | None:
        contents = getattr(seen, "contents", [])
        if any(c.get("text") == pieces[1] for c in contents):
            return error_response(400, code="DataInspectionFailed")
        return None

    service.fail = moderate
    result = make_client(service).embed(["short", LONG, "other"], on_invalid="skip")
    assert result.vectors[0] == text_vector("short")
    assert result.vectors[1] is None
    assert result.vectors[2] == text_vector("other")
    assert set(result.errors) == {1}
    assert result.pieces == {}


def test_async_client_splits_alike(
    make_async_client: MakeAsyncClient, service: FakeService
) -> None:
    async def run() -> list[list[float]]:
        client = make_async_client(service)
        return (await client.embed([LONG])).vectors

    vectors = asyncio.run(run())
    assert vectors[0] == pytest.approx(expected_mean(split_text(LONG)))


def test_cjk_and_unspaced_text_is_cut_between_characters(
    make_client: MakeClient, service: FakeService
) -> None:
    text = "长文本" * 1500
    result = make_client(service).embed([text])
    sent = sent_texts(service)
    assert "".join(sent) == text
    assert all(estimate_text_tokens(t) <= 1024 for t in sent)
    assert len(result.vectors) == 1
