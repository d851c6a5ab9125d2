"""``tongyi-vision demo``: a generated sample set indexed and searched through LangChain and
LlamaIndex, against the live API when a key is set and the bundled emulator otherwise.

Everything the demo shows is made on the spot (see :mod:`tongyi_vision.samples`)
in a temporary folder that is removed at the end. With ``--ui`` the samples are
indexed with ``tongyi-vision embed`` instead and served in the search page
(see :mod:`tongyi_vision.cli.ui`) until it is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..media.decoding import video_decoding_available
from ..samples import (
    SAMPLE_TEXTS,
    generate_sample_video,
    image_bytes,
    sample_image,
    write_sample_images,
    write_sample_texts,
)
from ..wire.results import Usage
from .ui import key_in_environment as _key_in_environment

DEMO_KEY = "demo-key"
# A picture of the red circle taken again: smaller and re-encoded as JPEG. Image-to-image
# search should find the original first, with the emulator as with the real model.
QUERY_IMAGE = "red-circle.png"
TEXT_TO_IMAGE = "a red circle"
TEXT_TO_TEXT = "a bicycle by a brick wall"
TEXT_TO_VIDEO = "a green scene with a white square moving across it"
VIDEO_SECONDS = 12.0
CLIP_SECONDS = 4.0
VIDEO_COLOURS = ((200, 40, 40), (40, 60, 200), (40, 170, 70))
TOP_K = 3


@dataclass
class Backend:
    """Where the demo sends its requests."""

    description: str
    api_key: str | None
    base_url: str | None
    dialect: str | None
    emulated: bool


@dataclass
class Samples:
    """The generated sample set, in a temporary folder."""

    folder: Path
    images: list[Path]
    query_image: Path
    texts: tuple[str, ...]
    video: Path | None
    video_note: str = ""


class Report:
    """Prints the demo's lines as they come (flushed, so a slow step shows where it is)."""

    def say(self, line: str = "") -> None:
        print(line, flush=True)


@contextlib.contextmanager
def _backend(args: argparse.Namespace) -> Iterator[Backend]:
    variable = _key_in_environment()
    if variable is not None and not args.emulator:
        dialect = (
            args.dialect
            or os.environ.get("TONGYI_VISION_DIALECT")
            or ("dashscope" if variable == "DASHSCOPE_API_KEY" else None)
        )
        place = args.base_url or os.environ.get("TONGYI_VISION_BASE_URL") or "its default URL"
        yield Backend(
            f"the live API ({dialect or 'openai'} dialect, {place}; key from {variable})",
            None,
            args.base_url,
            dialect,
            emulated=False,
        )
        return
    from ..emulator import running_emulator  # only for the demo: `--help` stays quick

    with running_emulator(api_key=DEMO_KEY) as url:
        reason = "--emulator given" if args.emulator else "no API key set"
        dialect = args.dialect or "openai"
        yield Backend(
            f"the bundled emulator at {url} ({dialect} dialect; {reason})",
            DEMO_KEY,
            url,
            dialect,
            emulated=True,
        )


def _make_samples(folder: Path, with_video: bool) -> Samples:
    images = write_sample_images(folder / "images")
    query = folder / "query" / "red-circle-again.jpg"
    query.parent.mkdir()
    query.write_bytes(_reencoded(image_bytes(sample_image(QUERY_IMAGE), size=256)))
    video: Path | None = None
    note = ""
    if with_video:
        video, note = _make_video(folder / "video" / "colours.mp4")
    else:
        note = "video left out (--no-video)"
    return Samples(folder, images, query, SAMPLE_TEXTS, video, note)


def _reencoded(png: bytes) -> bytes:
    import io

    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(png)) as image:
        smaller = image.convert("RGB").resize((180, 180))
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _make_video(path: Path) -> tuple[Path | None, str]:
    """A 12-second video: red, blue and green thirds, each with a white square crossing it."""
    if not video_decoding_available():
        return None, "video left out: install the video extra (pip install 'tongyi-vision[video]')"
    generate_sample_video(
        path,
        seconds=VIDEO_SECONDS,
        colours=VIDEO_COLOURS,
        segment_seconds=CLIP_SECONDS,
        size=(160, 120),
        fps=4,
    )
    return path, ""


def _short(source: object) -> str:
    text = str(source)
    if text.startswith("file://"):
        text = text[len("file://") :]
    name, _, fragment = text.partition("#")
    label = Path(name).name
    if fragment.startswith("t="):
        start, _, end = fragment[2:].partition(",")
        label += f" [{start}-{end} s]"
    return label


def _text_label(text: str) -> str:
    return f"\u201c{text if len(text) <= 60 else text[:57] + '...'}\u201d"


def _print_hits(report: Report, title: str, hits: Sequence[tuple[float, str]]) -> None:
    report.say(f"  {title}")
    for rank, (score, label) in enumerate(hits, start=1):
        report.say(f"    {rank}. {score:+.3f}  {label}")


# --- LangChain ---


def _langchain(
    report: Report, backend: Backend, args: argparse.Namespace, samples: Samples
) -> Usage:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from ..langchain import TongyiImageLoader, TongyiVisionEmbeddings

    report.say("LangChain: InMemoryVectorStore + TongyiVisionEmbeddings + TongyiImageLoader")
    options: dict[str, Any] = {
        "base_url": backend.base_url,
        "dialect": backend.dialect,
        "max_concurrency": args.max_concurrency,
    }
    if backend.api_key is not None:
        options["api_key"] = backend.api_key
    if args.model:
        options["model"] = args.model
    if args.dimension:
        options["dimension"] = args.dimension
    with TongyiVisionEmbeddings(**options) as embeddings:
        store = InMemoryVectorStore(embeddings)
        images = TongyiImageLoader(samples.folder / "images").load()
        texts = [Document(page_content=t, metadata={"kind": "text"}) for t in samples.texts]
        for document in images:
            document.metadata["kind"] = "image"
        clips = _langchain_clips(samples)
        store.add_documents([*images, *texts, *clips])
        counted = f"{len(images)} images, {len(texts)} texts"
        if clips:
            counted += f", {len(clips)} video clips (TongyiVideoLoader)"
        report.say(f"  indexed {counted} in one store")

        def kind(name: str) -> Any:
            return lambda document: document.metadata.get("kind") == name

        def label(document: Any) -> str:
            if document.metadata.get("kind") == "text":
                return _text_label(document.page_content)
            return _short(document.page_content)

        hits = store.similarity_search_with_score(TEXT_TO_IMAGE, k=TOP_K, filter=kind("image"))
        _print_hits(
            report, f"text -> image  {_text_label(TEXT_TO_IMAGE)}", [(s, label(d)) for d, s in hits]
        )
        vector = embeddings.embed_image([str(samples.query_image)])[0]
        hits = _by_vector(store, vector, kind("image"))
        _print_hits(
            report,
            f"image -> image  {samples.query_image.name} (the red circle, smaller, as JPEG)",
            [(s, label(d)) for d, s in hits],
        )
        hits = store.similarity_search_with_score(TEXT_TO_TEXT, k=TOP_K, filter=kind("text"))
        _print_hits(
            report, f"text -> text  {_text_label(TEXT_TO_TEXT)}", [(s, label(d)) for d, s in hits]
        )
        if clips:
            hits = store.similarity_search_with_score(TEXT_TO_VIDEO, k=TOP_K, filter=kind("video"))
            _print_hits(
                report,
                f"text -> video  {_text_label(TEXT_TO_VIDEO)}",
                [(s, label(d)) for d, s in hits],
            )
            hits = _by_vector(store, vector, kind("video"))
            _print_hits(
                report,
                f"image -> video  {samples.query_image.name} (which clip is red?)",
                [(s, label(d)) for d, s in hits],
            )
        elif samples.video_note:
            report.say(f"  ({samples.video_note})")
        usage: Usage = embeddings.usage
    return usage


def _by_vector(store: Any, vector: list[float], keep: Any) -> list[tuple[Any, float]]:
    # InMemoryVectorStore has no "by vector, with score" method: rank by its own search,
    # then score with cosine here.
    documents = store.similarity_search_by_vector(vector, k=TOP_K, filter=keep)
    return [(d, _cosine(vector, store.store[d.id]["vector"])) for d in documents]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    import math

    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0


def _langchain_clips(samples: Samples) -> list[Any]:
    """One document per clip of the sample video, its text a ``file://...#t=start,end`` URI."""
    if samples.video is None:
        return []
    from ..langchain import TongyiVideoLoader

    clips = TongyiVideoLoader(samples.video, clip_seconds=CLIP_SECONDS, on_error="raise").load()
    for clip in clips:
        clip.metadata["kind"] = "video"
    return clips


# --- LlamaIndex ---


def _llama_index(
    report: Report, backend: Backend, args: argparse.Namespace, samples: Samples
) -> Usage:
    from llama_index.core import Document
    from llama_index.core.indices import MultiModalVectorStoreIndex
    from llama_index.core.schema import ImageNode

    from ..llama_index import TongyiImageReader, TongyiVisionEmbedding

    report.say("LlamaIndex: MultiModalVectorStoreIndex + TongyiVisionEmbedding + TongyiImageReader")
    embedding = TongyiVisionEmbedding(
        model_name=args.model,
        api_key=backend.api_key,
        base_url=backend.base_url,
        dialect=backend.dialect,
        dimension=args.dimension,
        max_concurrency=args.max_concurrency,
    )
    try:
        images = TongyiImageReader(samples.folder / "images").load_data()
        texts = [Document(text=t) for t in samples.texts]
        clips = _llama_index_clips(embedding, samples)
        # One instance for both roles: texts, images and clips land in one vector space.
        index = MultiModalVectorStoreIndex.from_documents(
            [*images, *texts, *clips], embed_model=embedding, image_embed_model=embedding
        )
        counted = f"{len(images)} images, {len(texts)} texts"
        if clips:
            counted += f", {len(clips)} video clips (TongyiVideoReader)"
        report.say(f"  indexed {counted}")
        # Images and clips share the index's image store: ask for all, keep the kind wanted.
        everything = len(images) + len(clips)
        retriever = index.as_retriever(similarity_top_k=TOP_K, image_similarity_top_k=everything)

        def is_clip(node: Any) -> bool:
            return "clip_uri" in node.metadata

        def label(node: Any) -> str:
            if is_clip(node):
                return _short(node.metadata["clip_uri"])
            if isinstance(node, ImageNode):
                return _short(node.metadata.get("file_name") or node.image_path)
            return _text_label(node.get_content())

        def top(hits: Sequence[Any], clips_wanted: bool) -> list[tuple[float, str]]:
            kept = [
                h
                for h in hits
                if not isinstance(h.node, ImageNode) or is_clip(h.node) == clips_wanted
            ]
            return [(h.score or 0.0, label(h.node)) for h in kept[:TOP_K]]

        hits = retriever.text_to_image_retrieve(TEXT_TO_IMAGE)
        _print_hits(report, f"text -> image  {_text_label(TEXT_TO_IMAGE)}", top(hits, False))
        query = str(samples.query_image)
        image_hits = retriever.image_to_image_retrieve(query)
        _print_hits(report, f"image -> image  {samples.query_image.name}", top(image_hits, False))
        hits = retriever.text_retrieve(TEXT_TO_TEXT)
        _print_hits(report, f"text -> text  {_text_label(TEXT_TO_TEXT)}", top(hits, False))
        if clips:
            hits = retriever.text_to_image_retrieve(TEXT_TO_VIDEO)
            _print_hits(report, f"text -> video  {_text_label(TEXT_TO_VIDEO)}", top(hits, True))
            _print_hits(
                report, f"image -> video  {samples.query_image.name}", top(image_hits, True)
            )
        usage: Usage = embedding.usage
    finally:
        embedding.close()
    return usage


def _llama_index_clips(embedding: Any, samples: Samples) -> list[Any]:
    """Clip documents of the sample video, embedded while read (how TongyiVideoReader works)."""
    if samples.video is None:
        return []
    from ..llama_index import TongyiVideoReader

    reader = TongyiVideoReader(embedding, clip_seconds=CLIP_SECONDS, on_error="raise")
    return list(reader.load_data(str(samples.video)))


# --- the command ---


def _usage_line(name: str, usage: Usage) -> str:
    return (
        f"  {name}: {usage.total_tokens:,} tokens (text {usage.text_tokens:,}, media "
        f"{usage.media_tokens:,}), {usage.requests} requests, {usage.retries} retries, "
        f"${usage.cost_usd:.6f}"
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code (0). Errors propagate to the command's handler."""
    if getattr(args, "ui", False):
        return _run_demo_page(args)
    started = time.monotonic()
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="tongyi-vision-demo-") as tmp,
        _backend(args) as backend,
    ):
        report.say(f"backend: {backend.description}")
        if backend.emulated:
            report.say(
                "  note: the emulator's vectors are deterministic and content-derived (pixels "
                "for images and video, words for texts), NOT semantic:"
            )
            report.say(
                "  image-to-image, image-to-video and text-to-text rankings are meaningful, "
                "text-to-image and text-to-video ones are not."
            )
            report.say("  Set EMPIRIOLABS_API_KEY to run the same against the real model.")
        samples = _make_samples(Path(tmp), with_video=not args.no_video)
        made = f"{len(samples.images)} images, {len(samples.texts)} texts"
        if samples.video is not None:
            made += f", 1 video of {VIDEO_SECONDS:g} s (clips of {CLIP_SECONDS:g} s)"
        report.say(f"samples: {made}, drawn in {tmp} (removed at the end)")
        report.say()
        langchain_usage = _langchain(report, backend, args, samples)
        report.say()
        llama_usage = _llama_index(report, backend, args, samples)
        report.say()
        total = langchain_usage + llama_usage
        report.say("usage and cost:")
        report.say(_usage_line("LangChain", langchain_usage))
        report.say(_usage_line("LlamaIndex", llama_usage))
        report.say(_usage_line("total", total))
        if backend.emulated:
            report.say(
                "  (the emulator bills nothing; the cost is what the real service would "
                "charge for these tokens)"
            )
    report.say(f"done in {time.monotonic() - started:.1f} s")
    return 0


# --- demo --ui: the samples in the search page ---


def _run_demo_page(args: argparse.Namespace) -> int:
    """Index the samples with ``tongyi-vision embed`` and serve them in the search page until
    stopped; the URL is the first line of stdout, everything else goes to stderr."""
    from ..index import IndexTable
    from ..ui import require_web
    from .ui import say, search_service, serve_index

    require_web()  # before the samples are drawn and paid for

    with (
        tempfile.TemporaryDirectory(prefix="tongyi-vision-demo-") as tmp,
        _backend(args) as backend,
    ):
        folder = Path(tmp)
        say(f"backend: {backend.description}")
        samples = _make_samples(folder, with_video=not args.no_video)
        texts = folder / "texts"
        write_sample_texts(texts)
        index = folder / "demo.index"
        say(f"samples drawn in {tmp} (removed at the end); indexing them with tongyi-vision embed")
        paths = [folder / "images", texts] + ([samples.video] if samples.video else [])
        code = _embed_samples(args, backend, paths, index)
        if code != 0:
            return code
        table = IndexTable.open(index, consistent=True)
        with search_service(
            args,
            table.info,
            api_key=backend.api_key,
            base_url=backend.base_url,
            emulated=backend.emulated,
            description=backend.description,
        ) as service:
            notes = [
                f"try: drop {samples.query_image} on the page (the red circle again, smaller, "
                "as JPEG): its twin comes first"
            ]
            if backend.emulated:
                notes.append(
                    "the emulator's vectors are NOT semantic: image-to-image and text-to-text "
                    "rankings are meaningful, text-to-image ones are not"
                )
            if samples.video_note:
                notes.append(samples.video_note)
            return serve_index(
                table,
                service,
                host=args.host,
                port=args.port,
                k=12,
                thumbnails=folder / "thumbnails",
                notes=notes,
            )


def _embed_samples(
    args: argparse.Namespace, backend: Backend, paths: Sequence[Path], index: Path
) -> int:
    """``tongyi-vision embed PATHS --out INDEX`` in a process of its own (its report on
    stderr), with the backend's URL and key; returns its exit code."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "tongyi_vision", "embed", *map(str, paths)]
    command += ["--out", str(index), "--clip-seconds", f"{CLIP_SECONDS:g}", "--no-progress"]
    for flag, value in (
        ("--model", args.model),
        ("--dimension", args.dimension),
        ("--dialect", backend.dialect),
        ("--base-url", backend.base_url),
    ):
        if value is not None:
            command += [flag, str(value)]
    env = dict(os.environ)
    if backend.api_key is not None:
        # The emulator's key, for this one run (a live key stays where the user put it).
        env.update(EMPIRIOLABS_API_KEY=backend.api_key, DASHSCOPE_API_KEY=backend.api_key)
    done = subprocess.run(command, env=env, stdout=sys.stderr, check=False)
    return done.returncode
