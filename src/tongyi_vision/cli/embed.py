"""``tongyi-vision embed``: files and folders into a resumable index, chunk by chunk.

Each chunk is one best-effort call of the core client (``on_invalid="skip"``
unless ``--on-error stop``): the parts it refuses are reported, and the vectors
of each request are written to the index as soon as that request finishes
(while the others of its chunk are still in flight), so a killed run loses at
most what was in flight, and a re-run sends only what is new, changed or
failed before.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from ..engine.client import Client
from ..engine.progress import ProgressBar
from ..media.clips import DEFAULT_CLIP_SECONDS
from ..media.parts import Part
from ..wire.errors import APIError, InputError, TongyiVisionError
from ..wire.results import ProgressEvent
from . import common
from .common import (
    EXIT_API,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    dialect_of,
    dimension_option,
    fail,
    print_usage,
)
from .index import Header, Index, IndexWriter, item_record, read_index
from .items import Failure, Item, OnError, collect_items

# Items per embed call: small enough that a crash loses little, large enough to keep
# several requests in flight at once.
DEFAULT_CHUNK_SIZE = 64


class Reporter(Protocol):
    """Where an embed run reports progress and skipped items."""

    def started(self, total: int) -> None:
        """The run will embed ``total`` items."""

    def advanced(self, done: int) -> None:
        """``done`` items of the run are finished (embedded or failed)."""

    def skipped(self, failure: Failure) -> None:
        """An item failed and was skipped."""


class SilentReporter:
    """A :class:`Reporter` that says nothing."""

    def started(self, total: int) -> None:
        pass

    def advanced(self, done: int) -> None:
        pass

    def skipped(self, failure: Failure) -> None:
        pass


class ConsoleReporter:
    """The progress bar on stderr (where it is a terminal and tqdm is installed), with each
    skipped item on a line of its own above it."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar = ProgressBar(0, enabled=False)

    def started(self, total: int) -> None:
        self._bar = ProgressBar(
            total, enabled=self._enabled, desc="embed", unit="item", extra=None, stream=sys.stderr
        )

    def advanced(self, done: int) -> None:
        self._bar.advance_to(done)

    def skipped(self, failure: Failure) -> None:
        error = failure.error
        reason = error.reason if isinstance(error, InputError) else str(error)
        self._bar.write(f"skipped {failure.id}: {' '.join(reason.split())}")

    def close(self) -> None:
        self._bar.close()


@dataclass
class EmbedRun:
    """What an embed run did."""

    embedded: dict[str, int] = field(default_factory=lambda: {"text": 0, "image": 0, "video": 0})
    already_done: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped: bool = False
    """An interrupt asked the run to stop after the chunk in flight."""

    @property
    def embedded_total(self) -> int:
        return sum(self.embedded.values())


class Embedder:
    """Embeds items into an index in chunks, appending each chunk's records as it finishes."""

    def __init__(
        self,
        client: Client,
        writer: IndexWriter,
        *,
        on_error: OnError = "skip",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reporter: Reporter | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.client = client
        self.writer = writer
        self.on_error = on_error
        self.chunk_size = chunk_size
        self.reporter: Reporter = reporter or SilentReporter()
        self.should_stop = should_stop
        self.run = EmbedRun()
        self._done = 0

    def embed(self, items: Sequence[Item], index: Index | None) -> EmbedRun:
        """Embed every item not already in ``index``; raise on a failure ``on_error`` stops at."""
        todo = [item for item in items if index is None or not index.is_done(item)]
        self.run.already_done = len(items) - len(todo)
        self.reporter.started(len(todo))
        for start in range(0, len(todo), self.chunk_size):
            if self.should_stop():
                self.run.stopped = True
                break
            self._embed_chunk(todo[start : start + self.chunk_size])
        return self.run

    def _embed_chunk(self, chunk: list[Item]) -> None:
        items: list[Item] = []
        parts: list[Part] = []
        for item in chunk:
            try:
                parts.append(item.part())
            except InputError as exc:
                self._refuse(item, exc)
                continue
            items.append(item)
        base = self._done
        saved: set[int] = set()

        def progress(event: ProgressEvent) -> None:
            # Called as each request finishes, one at a time: its records reach the disk now.
            self._save(items, event.vectors, saved)
            self.reporter.advanced(base + event.parts_done)

        errors: dict[int, TongyiVisionError] = {}
        try:
            if self.on_error == "skip":
                result = self.client.embed(parts, progress=progress, on_invalid="skip")
                vectors, errors = result.vectors, result.errors
            else:
                vectors = list(self.client.embed(parts, progress=progress).vectors)
        except InputError as exc:  # only when stopping at the first bad item
            if exc.part_index is None:
                raise
            raise named_input_error(exc, items[exc.part_index].id) from exc
        except APIError as exc:
            # Keep what the call finished before the failure stopped it.
            if exc.partial is not None:
                self._save(items, dict(enumerate(exc.partial.vectors)), saved)
            raise
        self._save(items, dict(enumerate(vectors)), saved)
        self.reporter.advanced(self._done)
        for index, error in sorted(errors.items()):
            if isinstance(error, InputError):
                self._refuse(items[index], error)
            else:
                self._fail(items[index], error)

    def _save(
        self, items: list[Item], vectors: Mapping[int, list[float] | None], saved: set[int]
    ) -> None:
        """Write the records of the items at these positions that are not written yet."""
        done = [(i, v) for i, v in vectors.items() if v is not None and i not in saved]
        self.writer.append([item_record(items[i], vector) for i, vector in done])
        for index, _ in done:
            saved.add(index)
            self.run.embedded[items[index].kind] += 1
        self._done += len(done)

    def _refuse(self, item: Item, exc: InputError) -> None:
        """An item the client refused: skip it, or stop naming it in full."""
        named = named_input_error(exc, item.id)
        if self.on_error == "stop":
            raise named from exc
        self._fail(item, named)

    def _fail(self, item: Item, error: TongyiVisionError) -> None:
        failure = Failure(item.id, error)
        self.run.failures.append(failure)
        self.reporter.skipped(failure)
        self._done += 1
        self.reporter.advanced(self._done)


def named_input_error(exc: InputError, name: str) -> InputError:
    """``exc`` (same class, same reason) naming ``name`` in full instead of a part number."""
    try:
        named = type(exc)(exc.reason, part=name)
    except TypeError:  # a subclass with another constructor: keep it as it is
        return exc
    named.__cause__ = exc.__cause__
    return named


# --- the command ---


@contextmanager
def graceful_interrupt() -> Iterator[Callable[[], bool]]:
    """First Ctrl-C: finish and save the chunk in flight, then stop. Second: stop now."""
    asked = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal asked
        if asked:
            raise KeyboardInterrupt
        asked = True
        print(
            "\nstopping after the chunk in flight is saved (Ctrl-C again to stop now)",
            file=sys.stderr,
        )

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: keep the default behaviour
        yield lambda: False
        return
    try:
        yield lambda: asked
    finally:
        signal.signal(signal.SIGINT, previous)


def run_embed(args: argparse.Namespace) -> int:
    """The ``embed`` command; returns its exit code."""
    out: Path = args.out
    # The lock first: a second run on this index is refused before anything is read or sent.
    writer = IndexWriter(out)
    try:
        return _embed_into(args, writer)
    finally:
        writer.close()


def _embed_into(args: argparse.Namespace, writer: IndexWriter) -> int:
    out: Path = args.out
    index = None if writer.empty else read_index(out)
    if index is not None:
        _warn_skipped(index)
    model = args.model
    if index is not None:
        if model is None:
            model = index.header.model
        elif model != index.header.model:
            raise InputError(
                f"holds vectors of {index.header.model}, not {model}; "
                "use the same --model or another --out",
                part=str(out),
            )
    overrides: dict[str, Any] = {"model": model}
    if index is not None:
        # Going on with an index: its dialect and vector size unless told otherwise.
        overrides["dialect"] = dialect_of(args, index.header.dialect)
        if args.dimension is None:
            overrides["dimension"] = dimension_option(index.header.model, index.header.dimension)
    with common.make_client(args, **overrides) as client:
        dimension = client.dimension
        if index is not None and dimension is not None and dimension != index.header.dimension:
            raise InputError(
                f"holds {index.header.dimension}-dimensional vectors, not {dimension}; "
                "use the same --dimension or another --out",
                part=str(out),
            )
        clip_seconds = _clip_seconds(args.clip_seconds, index, out)
        collected = collect_items(
            args.paths, clip_seconds=clip_seconds, on_error=args.on_error, exclude=out
        )
        reporter = ConsoleReporter(enabled=not args.no_progress)
        for failure in collected.failures:
            reporter.skipped(failure)
        if index is None:
            writer.start(
                Header(client.model, dimension or 0, client.dialect, clip_seconds=clip_seconds)
            )
        with graceful_interrupt() as should_stop:
            embedder = Embedder(
                client,
                writer,
                on_error=args.on_error,
                chunk_size=args.chunk_size,
                reporter=reporter,
                should_stop=should_stop,
            )
            try:
                embedder.embed(collected.items, index)
            finally:
                # Also when a failure stops the run: say what the index holds and what it cost.
                reporter.close()
                run = embedder.run
                failures = collected.failures + run.failures
                _print_summary(out, run, failures, collected.ignored)
                print_usage(client.usage)
    if run.stopped:
        fail("interrupted; the index keeps every finished chunk: run the same command to go on")
        return EXIT_INTERRUPTED
    if failures:
        return EXIT_INPUT if isinstance(failures[0].error, InputError) else EXIT_API
    return EXIT_OK


def _warn_skipped(index: Index) -> None:
    """Say which lines of an index were unreadable and left out (a re-run embeds them again)."""
    for line in index.skipped:
        print(f"warning: {index.path}: {line}; skipped", file=sys.stderr)


def _clip_seconds(given: float | None, index: Index | None, out: Path) -> float:
    """The clip length: the index's when it has one, so that a later run cuts the same clips."""
    if index is None:
        return DEFAULT_CLIP_SECONDS if given is None else given
    if given is not None and given != index.header.clip_seconds:
        raise InputError(
            f"holds clips of {index.header.clip_seconds:g} s, not {given:g} s; "
            "use the same --clip-seconds or another --out",
            part=str(out),
        )
    return index.header.clip_seconds


def _print_summary(
    out: Path, run: EmbedRun, failures: Sequence[Failure], ignored: Sequence[str]
) -> None:
    kinds = ", ".join(f"{count} {kind}" for kind, count in run.embedded.items() if count)
    total = run.embedded_total
    print(f"embedded {total} item{'s' if total != 1 else ''}" + (f" ({kinds})" if kinds else ""))
    print(f"already in {out}: {run.already_done}")
    if ignored:
        print(f"ignored {len(ignored)} file(s) that are not images, videos or text files")
    if failures:
        print(
            f"failed: {len(failures)} (listed above on stderr; "
            "run the same command again to retry them)"
        )
    else:
        print("failed: 0")
