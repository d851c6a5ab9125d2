"""Multimodal search with LlamaIndex: pictures and notes in one MultiModalVectorStoreIndex,
searched by text and by image, persisted, reloaded, and used from async code.

    python examples/llamaindex_multimodal.py

With EMPIRIOLABS_API_KEY (or DASHSCOPE_API_KEY) set, it calls the live API.
Without a key it starts the local emulator inside this process. The flow is the
same, but the emulator's vectors are not semantic: there, only these answers
mean something: an image is nearest to itself and to its resized copies, and
texts that share words are near each other.

No LLM is involved: retrieval needs only the embedding model.
Needs ``pip install 'tongyi-vision[llama-index,image,emulator]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from llama_index.core import Document, StorageContext, load_index_from_storage
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageNode, NodeWithScore

from tongyi_vision.llama_index import TongyiImageReader, TongyiVisionEmbedding
from tongyi_vision.samples import draw_shape

# Simple shapes in distinct colours: easy to tell apart, for people and for the emulator.
PICTURES = {
    "red-circle.png": ((220, 30, 40), "circle"),
    "blue-square.png": ((30, 70, 200), "square"),
    "green-triangle.png": ((30, 160, 60), "triangle"),
    "yellow-stripes.png": ((230, 200, 20), "stripes"),
}
NOTES = [
    "The red circle is the logo of the cycling club.",
    "Blue squares mark the stations on the metro map.",
    "A green triangle on a trail sign means an easy walk.",
]


def make_media(folder: Path) -> tuple[Path, Path]:
    """Draw the pictures into ``folder/photos`` (plus one broken file the reader will skip);
    return the folder and a smaller JPEG copy of the triangle to search with."""
    photos = folder / "photos"
    photos.mkdir()
    for name, (colour, shape) in PICTURES.items():
        draw_shape(shape, colour, 256).save(photos / name)
    (photos / "broken.png").write_bytes(b"not really a PNG")
    query = folder / "query-triangle.jpg"
    colour, shape = PICTURES["green-triangle.png"]
    draw_shape(shape, colour, 256).resize((100, 100)).save(query, "JPEG")
    return photos, query


@contextlib.contextmanager
def embedding_model() -> Iterator[TongyiVisionEmbedding]:
    """The model on the live API when a key is set, else on an in-process emulator."""
    if os.environ.get("EMPIRIOLABS_API_KEY") or os.environ.get("DASHSCOPE_API_KEY"):
        dialect = "openai" if os.environ.get("EMPIRIOLABS_API_KEY") else "dashscope"
        with TongyiVisionEmbedding(dialect=dialect) as model:
            print(f"Using the live API at {model.base_url} ({model.dialect} dialect).")
            yield model
        return
    from tongyi_vision.emulator import running_emulator

    with running_emulator(api_key="example-key") as url:
        print(f"No API key set: using the local emulator at {url} (vectors are not semantic).")
        with TongyiVisionEmbedding(api_key="example-key", base_url=url) as model:
            yield model


def show(title: str, results: list[NodeWithScore]) -> None:
    print(f"\n{title}")
    for result in results:
        node = result.node
        if isinstance(node, ImageNode):
            meta = node.metadata
            what = f"image {meta['file_name']} ({meta['width']}x{meta['height']})"
        else:
            what = f"text  {node.get_content()!r}"
        print(f"  {result.score or 0.0:7.3f}  {what}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, embedding_model() as model:
        photos, query_image = make_media(Path(tmp))

        # 1. Read the pictures: one ImageDocument per image, pointing at its file.
        reader = TongyiImageReader(on_error="ignore")  # "warn" (default) also warns
        images = reader.load_data(photos)
        print(f"\nRead {len(images)} images; skipped: {[str(e) for e in reader.errors]}")
        notes = [Document(text=note) for note in NOTES]

        # 2. One instance as both models: texts and images share one vector space.
        storage = StorageContext.from_defaults()
        index = MultiModalVectorStoreIndex.from_documents(
            images + notes,
            embed_model=model,
            image_embed_model=model,
            storage_context=storage,
        )
        retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)

        # 3. A question in words: the nearest notes, and the nearest images.
        show(
            "retrieve('where do blue squares appear?'):",
            retriever.retrieve("where do blue squares appear?"),
        )
        show(
            "text_to_image_retrieve('a red circle'):",
            retriever.text_to_image_retrieve("a red circle"),
        )

        # 4. A picture as the question: a small JPEG copy finds its original first.
        found = retriever.image_to_image_retrieve(str(query_image))
        show(f"image_to_image_retrieve({query_image.name!r}):", found)

        # 5. Persist, reload with the same model, and search again.
        storage.persist(persist_dir=str(Path(tmp) / "index"))
        reloaded = load_index_from_storage(
            StorageContext.from_defaults(persist_dir=str(Path(tmp) / "index")),
            embed_model=model,
            image_embed_model=model,
        )
        if not isinstance(reloaded, MultiModalVectorStoreIndex):
            raise TypeError(f"expected a MultiModalVectorStoreIndex, got {type(reloaded)}")
        again = reloaded.as_retriever(image_similarity_top_k=1).image_to_image_retrieve(
            str(query_image)
        )
        show("after reloading, the same image query:", again)

        # 6. Async: insert a note and search, on this script's own event loop.
        async def insert_and_search() -> list[NodeWithScore]:
            await index.ainsert(Document(text="Purple kites drift above the windy hill."))
            return await index.as_retriever(similarity_top_k=1).aretrieve("purple kites")

        show("after ainsert, aretrieve('purple kites'):", asyncio.run(insert_and_search()))

        usage = model.usage
        print(
            f"\n{usage.requests} requests, {usage.total_tokens} tokens, "
            f"about ${usage.cost_usd:.6f} at list prices."
        )


if __name__ == "__main__":
    main()
