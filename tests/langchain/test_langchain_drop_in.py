"""TongyiVisionEmbeddings as a drop-in: OpenAI-style field names, the size in use, copies,
long texts, content blocks and raw base64, the documented serialization, and image hits
turned into a chat prompt's content blocks."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

from tests.langchain._langchain_fakes import KEY, FakeGateway, png_bytes, vector_for, write_image
from tongyi_vision import estimate_text_tokens
from tongyi_vision.langchain import TongyiVisionEmbeddings, to_content_blocks
from tongyi_vision.media.sources import data_uri, file_uri

Make = Callable[..., TongyiVisionEmbeddings]
RED = (220, 30, 40)
ROOT = Path(__file__).resolve().parents[2]


def test_openai_field_names_are_accepted(make_embeddings: Make) -> None:
    embeddings = make_embeddings(dimensions=768, request_timeout=12.5)
    assert embeddings.dimension == 768
    assert embeddings.timeout == 12.5
    assert embeddings._client.timeout.read == 12.5
    with pytest.raises(ValidationError, match="extra"):
        make_embeddings(not_a_field=1)


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({}, 768),
        ({"model": "tongyi-embedding-vision-plus"}, 1152),
        ({"dialect": "dashscope", "dimension": 512}, 512),
        ({"model": "tongyi-embedding-vision-flash-2026-03-06"}, 768),
    ],
)
def test_the_size_in_use_is_exposed_and_read_only(
    make_embeddings: Make, fields: dict[str, Any], size: int
) -> None:
    embeddings = make_embeddings(**fields)
    assert embeddings.dimension == size
    assert embeddings._client.dimension == size
    with pytest.raises(ValidationError, match="frozen"):
        embeddings.dimension = 64


def test_a_deep_copy_has_its_own_client_and_the_same_settings(
    make_embeddings: Make, gateway: FakeGateway
) -> None:
    original = make_embeddings(max_retries=1, default_headers={"X-Team": "a"})
    twin = copy.deepcopy(original)
    assert twin is not original and twin._client is not original._client
    assert (twin.model, twin.base_url, twin.max_retries) == (
        original.model,
        original.base_url,
        original.max_retries,
    )
    assert twin.default_headers == {"X-Team": "a"}
    assert twin.default_headers is not original.default_headers
    assert twin.api_key is not None and twin.api_key.get_secret_value() == KEY
    assert twin.embed_query("hello") == original.embed_query("hello")
    twin.close()
    assert original.embed_query("again") == vector_for({"text": "again"})


def test_a_long_text_is_split_by_default_and_refused_on_request(
    make_embeddings: Make, gateway: FakeGateway
) -> None:
    from tongyi_vision import TextTooLongError

    text = " ".join(f"Sentence {i} tells of rivers and bridges." for i in range(700))
    assert estimate_text_tokens(text) > 2048
    embeddings = make_embeddings()
    (vector,) = embeddings.embed_documents([text])
    assert len(vector) == 768
    assert embeddings.usage.pieces == len(gateway.contents) >= 3
    with pytest.raises(TextTooLongError):
        make_embeddings(long_text="error").embed_documents([text])
    truncated = make_embeddings(long_text="truncate")
    truncated.embed_documents([text])
    assert truncated.usage.truncated == 1


def test_raw_base64_is_an_image_in_embed_documents_as_in_embed_image(
    make_embeddings: Make, gateway: FakeGateway
) -> None:
    # What Chroma's add_images stores as a document's text, moved to another store.
    raw = base64.b64encode(png_bytes(RED)).decode("ascii")
    embeddings = make_embeddings()
    assert embeddings.embed_documents([raw]) == embeddings.embed_image([raw])
    assert gateway.kinds == ["image", "image"]


def test_content_blocks_embed_as_what_they_describe(
    make_embeddings: Make, gateway: FakeGateway
) -> None:
    png = png_bytes(RED)
    block = {"type": "image", "base64": base64.b64encode(png).decode(), "mime_type": "image/png"}
    embeddings = make_embeddings()
    text_block = {"type": "text", "text": "a red square"}
    vectors = embeddings.embed_documents([block, text_block])  # type: ignore[list-item]
    assert vectors == [
        vector_for({"image": data_uri("image/png", png)}),
        vector_for({"text": "a red square"}),
    ]
    assert embeddings.embed_image([block]) == vectors[:1]  # type: ignore[list-item]
    assert embeddings.embed_query({"type": "text", "text": "q"}) == vector_for({"text": "q"})  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_the_documented_serialization_runs(
    monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway
) -> None:
    # The snippet of docs/langchain.md, as written there, with the key in the environment.
    text = (ROOT / "docs" / "langchain.md").read_text()
    section = text.split("### Serialization", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None, "docs/langchain.md shows the serialization call"
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    namespace: dict[str, Any] = {}
    exec(compile(snippet.group(1), "docs/langchain.md", "exec"), namespace)
    revived = namespace["revived"]
    assert isinstance(revived, TongyiVisionEmbeddings)
    assert revived.api_key is not None and revived.api_key.get_secret_value() == KEY
    assert KEY not in namespace["text"]
    assert revived.model == namespace["embeddings"].model


def test_image_hits_become_content_blocks_for_a_chat_prompt(tmp_path: Path) -> None:
    red = write_image(tmp_path / "red.png", RED)
    raw = base64.b64encode(red.read_bytes()).decode()
    thumb = write_image(tmp_path / "thumb.jpg", (1, 2, 3), fmt="JPEG")
    documents = [
        Document(page_content=file_uri(red), metadata={"source": str(red)}),
        Document(page_content=data_uri("image/png", red.read_bytes())),
        Document(page_content=raw),
        Document(page_content="https://example.com/cat.png", metadata={"mime_type": "image/png"}),
        Document(
            page_content=file_uri(tmp_path / "talk.mp4") + "#t=10,20",
            metadata={
                "thumbnail_path": str(thumb),
                "source": "talk.mp4",
                "start_seconds": 10.0,
                "end_seconds": 20.0,
            },
        ),
        Document(page_content="a note about bicycles"),
        Document(page_content=file_uri(tmp_path / "gone.png")),
    ]
    blocks = to_content_blocks(documents)
    images = [b for b in blocks if b["type"] == "image"]
    assert [base64.b64decode(b["base64"]) for b in images[:3]] == [red.read_bytes()] * 3
    assert all(b["mime_type"] == "image/png" for b in images[:3])
    assert images[3] == {"type": "image", "url": "https://example.com/cat.png"}
    assert base64.b64decode(images[4]["base64"]) == thumb.read_bytes()
    assert images[4]["mime_type"] == "image/jpeg"
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    assert texts == [
        "(video clip: talk.mp4, 10.0-20.0 s)",
        "a note about bicycles",
        file_uri(tmp_path / "gone.png"),  # a file gone since: its reference, as text
    ]
    # without text: the images, and the clip's caption that goes with its thumbnail
    assert len(to_content_blocks(documents, text=False)) == 6
    # the blocks are LangChain's standard ones: a message parses them as images
    from langchain_core.messages import HumanMessage

    message = HumanMessage(content=[{"type": "text", "text": "what is this?"}, *blocks])
    kinds = [b["type"] for b in message.content_blocks]
    assert kinds.count("image") == 5
