"""``tongyi_vision.langchain.open_index`` over an index the real CLI built, against an emulator
process of its own (so that its ``/stats`` counters are this test's alone).

The CLI runs as a user runs it (``python -m tongyi_vision embed|search``); the store then
searches the same LanceDB table by text, by image, through a filtered retriever and
asynchronously, adds documents, and the CLI sees them. The emulator's vectors are lexical
for text and pixel-based for images: an image is nearest to itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.documents import Document

from tongyi_vision import file_uri
from tongyi_vision.index import IndexTable
from tongyi_vision.langchain import TongyiImageLoader, TongyiIndexStore, open_index

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

NOTE = "The lighthouse keeper logs every passing ship in a leather notebook."
ADDED = "A recipe for saffron bread with cardamom and raisins."


def tongyi_vision(server: RunningEmulator, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGYI_VISION_")}
    env.update(
        EMPIRIOLABS_API_KEY=server.api_key,
        DASHSCOPE_API_KEY="",
        TONGYI_VISION_BASE_URL=server.base_url,
    )
    return subprocess.run(
        [sys.executable, "-m", "tongyi_vision", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_search(server: RunningEmulator, *args: str | Path) -> list[dict[str, Any]]:
    done = tongyi_vision(server, "search", *args, "--json")
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


class Counter:
    """What the emulator answered and billed since the last look."""

    def __init__(self, server: RunningEmulator) -> None:
        self.server = server
        self.last = server.stats()

    def since(self) -> dict[str, int]:
        now = self.server.stats()
        keys = ("requests", "billed_parts", "failed", "throttled")
        delta = {key: now[key] - self.last[key] for key in keys}
        self.last = now
        return delta


def sent(requests: int, parts: int) -> dict[str, int]:
    return {"requests": requests, "billed_parts": parts, "failed": 0, "throttled": 0}


@pytest.fixture
def server(start_emulator: Callable[..., RunningEmulator]) -> RunningEmulator:
    return start_emulator()


@pytest.fixture
def folder(tmp_path: Path, make_image: Callable[..., bytes]) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "harbour.jpg").write_bytes(make_image(11))
    (root / "forest.png").write_bytes(make_image(12, fmt="PNG"))
    (root / "desert.jpg").write_bytes(make_image(13))
    (root / "log.txt").write_text(NOTE + "\n")
    return root


def test_open_index_over_what_the_cli_built(
    server: RunningEmulator,
    folder: Path,
    tmp_path: Path,
    make_image: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = tmp_path / "media.index"
    counter = Counter(server)
    built = tongyi_vision(server, "embed", folder, "--out", index, "--no-progress")
    assert built.returncode == 0, built.stderr
    assert counter.since()["billed_parts"] == 4  # three images and the text's one chunk
    notes, forest = str((folder / "log.txt").resolve()), str((folder / "forest.png").resolve())
    images = {
        str((folder / name).resolve()) for name in ("harbour.jpg", "forest.png", "desert.jpg")
    }

    monkeypatch.setenv("EMPIRIOLABS_API_KEY", server.api_key)
    monkeypatch.setenv("TONGYI_VISION_BASE_URL", server.base_url)
    with open_index(index) as store:
        assert isinstance(store, TongyiIndexStore)
        before = {row.id: row for row in store.table.get([notes, *images], vectors=True)}
        assert set(before) == {notes, *images}

        # Text finds the text file's chunk, with the row's columns in its metadata.
        by_text = store.similarity_search("lighthouse keeper notebook", k=4)
        assert by_text[0].id == notes and by_text[0].page_content.strip() == NOTE
        assert by_text[0].metadata["kind"] == "text"
        assert by_text[0].metadata["source"] == notes
        assert counter.since() == sent(1, 1)

        # An image finds its own row first.
        ((own, score), *others) = store.similarity_search_by_image_with_score(
            folder / "forest.png", k=4
        )
        assert own.id == forest and own.page_content == file_uri(folder / "forest.png")
        assert score == pytest.approx(1.0, abs=1e-4)
        assert all(other_score < score for _, other_score in others)
        assert counter.since() == sent(1, 1)

        # A retriever filtered on kind sees only images.
        retriever = store.as_retriever(search_kwargs={"k": 10, "filter": {"kind": "image"}})
        found = retriever.invoke("lighthouse keeper notebook")
        assert {doc.id for doc in found} == images
        assert counter.since() == sent(1, 1)

        # Async gives what sync gives.
        found_async = asyncio.run(store.asimilarity_search("lighthouse keeper notebook", k=4))
        assert [doc.id for doc in found_async] == [doc.id for doc in by_text]
        assert counter.since() == sent(1, 1)

        # Adding appends: a note, and a picture from elsewhere through the image loader.
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (outside / "bridge.jpg").write_bytes(make_image(14))
        (picture,) = TongyiImageLoader(outside).load()
        added = store.add_documents(
            [Document(page_content=ADDED, metadata={"origin": "langchain"}), picture]
        )
        assert len(added) == 2 and not set(added) & set(before)
        adding = counter.since()
        # Two parts, packed into one request or sent as one per medium: nothing more.
        assert adding["billed_parts"] == 2 and 1 <= adding["requests"] <= 2
        assert adding["failed"] == adding["throttled"] == 0
        assert store.table.count() == len(before) + 2
        after = store.table.get(list(before), vectors=True)
        assert [(r.id, r.content, r.metadata, list(r.vector)) for r in after] == [
            (r.id, r.content, r.metadata, list(r.vector)) for r in before.values()
        ]
        kinds = {row.id: row.kind for row in store.table.get(added)}
        assert kinds == {added[0]: "text", added[1]: "image"}
        assert store.get_by_ids([added[0]]) == [
            Document(id=added[0], page_content=ADDED, metadata={"origin": "langchain"})
        ]

    # The CLI's search sees the added rows.
    (top, *_) = cli_search(server, index, "saffron bread cardamom", "-k", "3")
    assert (top["id"], top["kind"], top["content"]) == (added[0], "text", ADDED)
    (top_image, *_) = cli_search(server, index, "--image", outside / "bridge.jpg", "-k", "2")
    assert (top_image["id"], top_image["kind"]) == (added[1], "image")
    assert counter.since() == sent(2, 2)

    # A second embed run of the folder sends nothing and keeps what the store added.
    again = tongyi_vision(server, "embed", folder, "--out", index, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert counter.since() == sent(0, 0)
    assert IndexTable.open(index).count() == len(before) + 2
