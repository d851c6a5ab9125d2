"""Multimodal retrieval with LangChain: images and texts in one vector store, searched by text
and by image, a retriever inside an LCEL chain, and image hits handed to a multimodal chat
prompt as standard content blocks.

    python examples/langchain_multimodal_rag.py

With EMPIRIOLABS_API_KEY (or DASHSCOPE_API_KEY) set, it calls the live API.
Without a key it starts the local emulator in this process: the same flow runs,
but the emulator's vectors are not semantic (an image is nearest to itself and
its resized copies, texts sharing words are near each other), so only those
answers are meaningful there.

Needs ``pip install 'tongyi-vision[langchain,image,emulator]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from tongyi_vision import file_uri
from tongyi_vision.langchain import TongyiImageLoader, TongyiVisionEmbeddings, to_content_blocks
from tongyi_vision.samples import draw_shape

PICTURES = {
    "red-circle": ((220, 30, 40), "circle", "a red circle on a white background"),
    "blue-square": ((30, 70, 200), "square", "a blue square on a white background"),
    "green-triangle": ((30, 160, 60), "triangle", "a green triangle pointing up"),
    "yellow-stripes": ((230, 200, 20), "stripes", "yellow horizontal stripes"),
}
NOTES = [
    "The red circle is the logo of the cycling club.",
    "Blue squares mark the stations on the metro map.",
    "A green triangle on a trail sign means an easy walk.",
]


def write_pictures(folder: Path) -> Path:
    """Draw the pictures into ``folder/photos``, and a smaller copy of one to query with."""
    photos = folder / "photos"
    photos.mkdir()
    for name, (colour, shape, _) in PICTURES.items():
        draw_shape(shape, colour, 256).save(photos / f"{name}.png")
    query = folder / "query-green-triangle.jpg"
    colour, shape, _ = PICTURES["green-triangle"]
    draw_shape(shape, colour, 256).resize((120, 120)).save(query, "JPEG")
    return query


@contextlib.contextmanager
def service() -> Iterator[TongyiVisionEmbeddings]:
    """Embeddings on the live API when a key is set, else on an in-process emulator."""
    if os.environ.get("EMPIRIOLABS_API_KEY") or os.environ.get("DASHSCOPE_API_KEY"):
        dialect = None if os.environ.get("EMPIRIOLABS_API_KEY") else "dashscope"
        # The queries below are made here, not typed by users: let them name local files.
        with TongyiVisionEmbeddings(dialect=dialect, read_query_files=True) as embeddings:
            print(f"Using the live API at {embeddings.base_url} ({embeddings.dialect} dialect).")
            yield embeddings
        return
    from tongyi_vision.emulator import running_emulator

    with running_emulator(api_key="example-key") as url:
        print(f"No API key set: using the local emulator at {url} (vectors are not semantic).")
        with TongyiVisionEmbeddings(
            api_key="example-key", base_url=url, read_query_files=True
        ) as embeddings:
            yield embeddings


def name_of(document: Document) -> str:
    return Path(document.metadata["source"]).name


def format_docs(documents: list[Document]) -> str:
    return "\n".join(f"[{name_of(d)}] {_describe(d)}" for d in documents)


def _describe(document: Document) -> str:
    if document.metadata.get("mime_type", "").startswith("image/"):
        meta = document.metadata
        return f"an image, {meta['width']}x{meta['height']} {meta['mime_type']}"
    return document.page_content


def answer(prompt: dict[str, str]) -> str:
    """Stands in for a chat model; put ``ChatPromptTemplate | your_chat_model`` here."""
    return f"Question: {prompt['question']}\nContext the model would see:\n{prompt['context']}"


def chat_model(messages: list[BaseMessage]) -> str:
    """Stands in for a multimodal chat model (``ChatOpenAI``, ``ChatTongyi``...): says what it
    was shown."""
    blocks = messages[-1].content_blocks
    images = [b for b in blocks if b["type"] == "image"]
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    kinds = ", ".join(sorted({str(b.get("mime_type")) for b in images}))
    return f"The model sees {len(images)} image(s) ({kinds}) and the text blocks {texts}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, service() as embeddings:
        query_image = write_pictures(Path(tmp))

        # 1. Load the pictures: one document per image, its text a file:// URI.
        images = TongyiImageLoader(Path(tmp) / "photos").load()
        notes = [
            Document(page_content=n, metadata={"source": f"note-{i}.txt"})
            for i, n in enumerate(NOTES)
        ]
        print(f"\nLoaded {len(images)} images, e.g. {images[0].page_content}")

        # 2. Any vector store: the embeddings turn the URIs into image vectors.
        store = InMemoryVectorStore(embeddings)
        store.add_documents(images + notes)
        print(f"Stored {len(images)} image vectors and {len(notes)} text vectors.")

        # 3. Text to text and image: a question in words.
        question = "where do blue squares appear?"
        print(f"\nText query {question!r}:")
        for document, score in store.similarity_search_with_score(question, k=3):
            print(f"  {score:.3f}  {name_of(document)}")

        # 4. Image to image: a smaller JPEG copy finds the original PNG first.
        (vector,) = embeddings.embed_image([str(query_image)])
        found = store.similarity_search_by_vector(vector, k=2)
        print(f"\nImage query {query_image.name}: {[name_of(d) for d in found]}")

        # 5. A retriever in an LCEL chain; a media reference is a query like any other.
        retriever = store.as_retriever(search_kwargs={"k": 2})
        chain = {
            "context": retriever | format_docs,
            "question": RunnablePassthrough(),
        } | RunnableLambda(answer)
        print("\nChain, asked with an image:")
        print(chain.invoke(file_uri(str(query_image))))

        # 6. Image hits into a multimodal chat prompt: a chat model cannot open a file:// URI,
        #    so the hits become standard content blocks (the image itself, base64).
        def prompt(query: str) -> list[BaseMessage]:
            hits = retriever.invoke(query)
            question = {"type": "text", "text": "Which of these pictures is like mine?"}
            return [HumanMessage(content=[question, *to_content_blocks(hits)])]

        multimodal = RunnableLambda(prompt) | RunnableLambda(chat_model)
        print("\nMultimodal chain, asked with an image:")
        print(multimodal.invoke(file_uri(str(query_image))))

        # 7. The async twins run their requests concurrently on the event loop.
        async def ask_async() -> list[list[Document]]:
            questions = ["a red circle", "green triangle trail sign", "yellow stripes"]
            results = await asyncio.gather(*(store.asimilarity_search(q, k=1) for q in questions))
            await embeddings.aclose()
            return results

        top = [found[0] for found in asyncio.run(ask_async())]
        print(f"\nAsync text queries, top hits: {[name_of(d) for d in top]}")

        usage = embeddings.usage
        print(
            f"\nUsage: {usage.requests} requests, {usage.total_tokens} tokens, "
            f"about ${usage.cost_usd:.6f}"
        )


if __name__ == "__main__":
    main()
