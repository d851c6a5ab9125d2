"""The emulator's own JSON rendering writes what json.dumps writes; cached vectors stay safe."""

from __future__ import annotations

import json
import random
from typing import Any

from tongyi_vision.emulator._app import _dumps
from tongyi_vision.emulator._vectors import text_vector


def _reference(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def test_answers_render_byte_for_byte_like_json_dumps() -> None:
    rng = random.Random(5)
    dense = [rng.uniform(-1, 1) for _ in range(768)]
    sparse = [0.0] * 768
    sparse[3], sparse[700] = -0.5, 1e-300
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": dense},
            {"object": "embedding", "index": 1, "embedding": sparse},
            {"object": "embedding", "index": 2, "embedding": "AAAAPw=="},
        ],
        "model": 'tongyi "flash" ü 中文',
        "usage": {"prompt_tokens": 12, "total_tokens": 12, "details": None, "ok": True},
        "empty": [],
        "ints": [1, 2, 3],
        "mixed": [0.5, "x"],
    }
    assert _dumps(payload) == _reference(payload)
    assert json.loads(_dumps(payload))["data"][0]["embedding"] == dense


def test_a_cached_text_vector_is_a_fresh_list_each_time() -> None:
    first = text_vector("a red bicycle", 768)
    first[0] = 99.0
    again = text_vector("a red bicycle", 768)
    assert again[0] != 99.0
    assert again == text_vector("a red bicycle", 768)
