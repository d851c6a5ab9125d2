"""The two wire dialects as pure functions: build a body, read an answer, read an error."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .errors import APIResponseValidationError, DimensionMismatchError
from .models import (
    NATIVE_PATH,
    OPENAI_PATH,
    NativeResponse,
    NativeUsage,
    OpenAIResponse,
)
from .results import Usage, Vector

# Embeddings are normalised (components well inside [-1, 1]); far beyond is a broken answer.
MAX_COMPONENT = 1e6


@dataclass(frozen=True)
class Answer:
    """A parsed success answer: vectors in the order of the request's contents."""

    vectors: list[Vector]
    usage: Usage
    request_id: str | None


def path_for(dialect: str) -> str:
    return OPENAI_PATH if dialect == "openai" else NATIVE_PATH


def build_body(
    dialect: str,
    model: str,
    contents: Sequence[dict[str, Any]],
    dimension: int | None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of one request.

    In the openai dialect a batch of texts goes as a list of strings (what any
    OpenAI-compatible gateway takes) and a batch with media as a native part
    list, the only form that carries ``multi_images``; the gateway's contract has
    no ``parameters``, so the client refuses them before it gets here. In the
    native dialect ``dimension`` and ``parameters`` (``res_level``, ``fps``,
    ``max_video_frames``, ``instruct``) go in ``parameters``, in a fixed order.
    """
    extra = {k: v for k, v in (parameters or {}).items() if v is not None}
    if dialect == "openai":
        if extra:
            raise ValueError(
                f"the openai dialect carries no parameters ({', '.join(sorted(extra))})"
            )
        if all(list(c) == ["text"] for c in contents):
            return {"model": model, "input": [c["text"] for c in contents]}
        return {"model": model, "input": {"contents": list(contents)}}
    body: dict[str, Any] = {"model": model, "input": {"contents": list(contents)}}
    given: dict[str, Any] = {} if dimension is None else {"dimension": dimension}
    given.update(sorted(extra.items()))
    if given:
        body["parameters"] = given
    return body


def parse_answer(
    dialect: str,
    content: bytes,
    *,
    count: int,
    dimension: int | None,
    text_tokens: int,
    has_media: bool,
    request_id: str | None,
) -> Answer:
    """Read a 2xx answer: every one of ``count`` vectors present once, placed by ``index``,
    of the expected size and finite. Anything else raises :class:`APIResponseValidationError`."""
    try:
        if dialect == "openai":
            parsed = OpenAIResponse.model_validate_json(content)
            items = [(d.index, d.embedding) for d in parsed.data]
            total = parsed.usage.total_tokens if parsed.usage else 0
            # embeddings have no output tokens: a missing prompt count is the total
            prompt = (parsed.usage.prompt_tokens if parsed.usage else 0) or total
            usage = _split_usage(prompt, max(total, prompt), text_tokens, has_media)
        else:
            native = NativeResponse.model_validate_json(content)
            items = [(e.index, e.embedding) for e in native.output.embeddings]
            usage = native_usage(native.usage, text_tokens, has_media)
            request_id = native.request_id or request_id
    except (ValidationError, ValueError) as exc:
        # Not chained: pydantic's error shows the offending input, which may echo the key.
        raise APIResponseValidationError(
            f"the answer is not a valid {dialect} embeddings response: {_first_error(exc)}",
            request_id=request_id,
        ) from None

    sizes = {len(vector) for _, vector in items}
    if dimension is not None and len(sizes) == 1 and 0 not in sizes and dimension not in sizes:
        # every vector of one other size: the size the service makes, not a broken answer
        raise DimensionMismatchError(
            f"the service returned vectors of {sizes.pop()} dimensions where {dimension} "
            "were expected",
            request_id=request_id,
        )
    vectors: list[Vector | None] = [None] * count
    for index, vector in items:
        if not 0 <= index < count or vectors[index] is not None:
            raise APIResponseValidationError(
                f"the answer has an embedding at index {index}, which is out of range or repeated "
                f"for a request of {count} parts",
                request_id=request_id,
            )
        # Without a known size, the first vector sets it: one answer never mixes sizes.
        expected = dimension if dimension is not None else len(items[0][1])
        if not vector or len(vector) != expected:
            # a vector of a known size but another one than asked for: the size the service
            # makes, not a broken answer
            raise APIResponseValidationError(
                f"the embedding at index {index} has {len(vector)} dimensions, "
                f"expected {expected or 'at least one'}",
                request_id=request_id,
            )
        floats = list(map(float, vector))  # JSON integers too: vectors are plain floats
        if not all(map(math.isfinite, floats)):
            raise APIResponseValidationError(
                f"the embedding at index {index} has a NaN or infinite value", request_id=request_id
            )
        largest = max(map(abs, floats))
        if largest == 0 or largest > MAX_COMPONENT:
            what = "is all zeros" if largest == 0 else f"has a value of {largest:.3g}"
            raise APIResponseValidationError(
                f"the embedding at index {index} {what}, which no embedding has",
                request_id=request_id,
            )
        vectors[index] = floats
    missing = [i for i, v in enumerate(vectors) if v is None]
    if missing:
        raise APIResponseValidationError(
            f"the answer has {count - len(missing)} embeddings for {count} parts "
            f"(missing indexes {missing[:8]})",
            request_id=request_id,
        )
    return Answer([v for v in vectors if v is not None], usage, request_id)


def _split_usage(prompt: int, total: int, text_tokens: int, has_media: bool) -> Usage:
    """Usage when the provider gives only a total: the client sends texts and media in separate
    requests, so a text-only request is all text; a mixed one is split by the text estimate."""
    if not has_media:
        return Usage(prompt_tokens=prompt, total_tokens=total, text_tokens=prompt)
    if text_tokens == 0:
        return Usage(prompt_tokens=prompt, total_tokens=total, media_tokens=prompt)
    text = min(prompt, text_tokens)
    return Usage(
        prompt_tokens=prompt,
        total_tokens=total,
        text_tokens=text,
        media_tokens=prompt - text,
        modality_estimated=True,
    )


def native_usage(usage: NativeUsage | None, text_tokens: int, has_media: bool) -> Usage:
    """Both native usage shapes (contract.md, "Usage: two shapes"), with the tokens of each
    modality where ``input_tokens_details`` names them."""
    if usage is None:
        return Usage()
    input_tokens = usage.input_tokens or 0
    image_count = usage.image_count or 0
    seconds = usage.duration or 0.0
    details = usage.input_tokens_details
    images = videos = 0
    if details is not None:
        images, videos = details.image_tokens or 0, details.video_tokens or 0
        # input_tokens holds every modality together; without it, the details add up
        prompt = (
            usage.input_tokens
            if usage.input_tokens is not None
            else (details.text_tokens or 0) + images + videos
        )
        text = details.text_tokens if details.text_tokens is not None else prompt - images - videos
        text = min(max(text, 0), prompt)
        # what the details name cannot be more than the media tokens of the prompt
        images = min(images, prompt - text)
        videos = min(videos, prompt - text - images)
        base = Usage(prompt_tokens=prompt, text_tokens=text, media_tokens=prompt - text)
    elif usage.image_tokens is not None:
        prompt = input_tokens + usage.image_tokens
        images = usage.image_tokens
        base = Usage(
            prompt_tokens=prompt, text_tokens=input_tokens, media_tokens=usage.image_tokens
        )
    else:
        prompt = input_tokens
        base = _split_usage(prompt, prompt, text_tokens, has_media)
    total = max(usage.total_tokens or 0, prompt)
    return Usage(
        prompt_tokens=base.prompt_tokens,
        total_tokens=total,
        text_tokens=base.text_tokens,
        media_tokens=base.media_tokens,
        image_tokens=images,
        video_tokens=videos,
        image_count=image_count,
        video_seconds=seconds,
        modality_estimated=base.modality_estimated,
    )


def parse_error(dialect: str, status: int, content: bytes) -> tuple[str | None, str, str | None]:
    """(provider code, message, request id) from an error body of either dialect.

    The body may be JSON with or without a JSON content type, in either shape
    (a gateway may pass a native error through), or not JSON at all. This never
    raises: whatever the body holds, the caller gets a message to show.
    """
    text = content.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        request_id = _text(data.get("request_id"))
        error = data.get("error")
        if isinstance(error, dict):
            # openai shape: {"error": {"message", "type", "code", "param"}}
            code = _text(error.get("code")) or _text(error.get("type"))
            message = _text(error.get("message")) or f"HTTP {status}"
            return code, message, request_id or _text(error.get("request_id"))
        if isinstance(error, str) and error:
            # some gateways answer {"error": "message"}
            return _text(data.get("code")), error, request_id
        if "code" in data or "message" in data:
            # native shape: {"code", "message", "request_id"}
            return (
                _text(data.get("code")),
                _text(data.get("message")) or f"HTTP {status}",
                request_id,
            )
    snippet = text[:200] if text else "(empty body)"
    return None, f"HTTP {status}: {snippet}", None


def _text(value: object) -> str | None:
    """A JSON scalar as a string (codes come as strings or numbers); ``None`` for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value) or None
    return None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)[:200]
