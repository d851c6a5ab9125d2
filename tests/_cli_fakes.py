"""The fake service the CLI tests run the command against, running the command, and reading
back the index it wrote.

``fake`` is a fixture (registered in ``tests/conftest.py``): every client the command makes
talks to it."""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tongyi_vision import Client, cli
from tongyi_vision.cli import common
from tongyi_vision.index import IndexTable, Row

DIMENSION = 768


def fake_vector(content: Any, dimension: int = DIMENSION) -> list[float]:
    """A deterministic vector per part content: equal parts, equal vectors."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    return [(digest[i % 32] - 127.5) / 128 + (i % 7) / 100 for i in range(dimension)]


@dataclass
class Fake:
    """The service in both dialects; ``fail`` may answer a request (by number) with an error."""

    fail: Callable[[int, list[Any]], httpx.Response | None] | None = None
    requests: int = 0
    parts: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        given = body["input"]
        contents = [{"text": t} for t in given] if isinstance(given, list) else given["contents"]
        with self.lock:
            self.requests += 1
            number = self.requests
        if self.fail is not None:
            refused = self.fail(number, contents)
            if refused is not None:
                return refused
        with self.lock:
            self.parts.extend(contents)
            self.paths.append(request.url.path)
        tokens = 5 * len(contents)
        if request.url.path.endswith("/multimodal-embedding"):
            dimension = body.get("parameters", {}).get("dimension", DIMENSION)
            embeddings = [
                {"index": i, "embedding": fake_vector(c, dimension), "type": "text"}
                for i, c in enumerate(contents)
            ]
            native = {"input_tokens": tokens, "total_tokens": tokens}
            return httpx.Response(
                200,
                json={"output": {"embeddings": embeddings}, "usage": native, "request_id": "r"},
            )
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(c)}
            for i, c in enumerate(contents)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return httpx.Response(
            200, json={"object": "list", "data": data, "model": body["model"], "usage": usage}
        )


def error(status: int, message: str = "refused", code: str = "InvalidParameter") -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "type": "error", "code": code, "param": None}}
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    """A fake service; every client the command makes talks to it."""
    service = Fake()

    def make(args: argparse.Namespace, **overrides: Any) -> Client:
        settings = {
            "model": getattr(args, "model", None),
            "dialect": args.dialect,
            "dimension": getattr(args, "dimension", None),
            "max_concurrency": args.max_concurrency,
            "max_retries": 0,
            **overrides,
        }
        http = httpx.Client(transport=httpx.MockTransport(service.handler))
        return Client(api_key="sk-test", http_client=http, **settings)

    monkeypatch.setattr(common, "make_client", make)
    return service


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def index_rows(index: Path, *, vectors: bool = True) -> dict[str, Row]:
    """Every row of the index folder ``index`` by id, read back as a new reader would."""
    table = IndexTable.open(index)
    return {row.id: row for row in table.get(sorted(table.state()), vectors=vectors)}


def wait_for_rows(index: Path, at_least: int, timeout: float = 20.0) -> bool:
    """Whether the index on disk comes to hold ``at_least`` rows within ``timeout`` seconds
    (read by a reader of its own, as another process would)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if IndexTable.exists(index) and IndexTable.open(index).count() >= at_least:
            return True
        time.sleep(0.01)
    return False
