"""``tongyi-vision embed``: files and folders into an index (a LanceDB table), resumably.

The items not in the index yet (by id and the sha256 of their file) are embedded
in calls of the core client of up to ``--chunk-size`` items, two calls at a time
so that the requests in flight never drain between calls (the client's
``max_concurrency`` bounds them all). Each call is best effort
(``on_invalid="skip"`` unless ``--on-error stop``). As each request finishes, its
rows go to a writer thread, which appends whatever has arrived in one commit
while the requests go on: a killed run loses at most what was in flight, and a
re-run sends only what is new, changed or failed before.

With ``--ray`` the same plan is embedded on a Ray cluster (:class:`RayEmbedder`): the
items travel as rows to a pool of actors (``tongyi_vision.ray``), which read and
prepare the files, and the rows that come back go to the same writer here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import queue
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from ..engine.client import Client
from ..engine.progress import ProgressBar
from ..index import IndexInfo, IndexTable, Row, WriteLock
from ..index.table import ANN_MIN_ROWS, LOCK_FILE, describe_path, load_lancedb
from ..media.clips import DEFAULT_CLIP_SECONDS
from ..media.parts import Part
from ..media.sources import path_from
from ..wire import errors
from ..wire.errors import APIError, InputError, TongyiVisionError
from ..wire.results import ProgressEvent, Usage
from . import common
from .common import (
    EXIT_API,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    dialect_of,
    fail,
    print_usage,
)
from .items import Collected, Failure, Item, OnError, collect_items, measure_images

# Items per embed call: what the client holds in memory at once (their vectors), per call.
DEFAULT_CHUNK_SIZE = 2048
# Calls at once: while one waits for its last requests, the next one's are already sent.
CALLS_IN_FLIGHT = 2
# Rows are committed at most this long after their request finished: a commit costs about
# the same for 8 rows as for 800, so one per request would spend a core on the disk.
COMMIT_INTERVAL = 0.25
INTERRUPTED = "interrupted; the index keeps every finished request: run the same command to go on"


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


class RowWriter:
    """The one writer of a run: appends rows on a thread of its own, whatever has arrived
    within ``interval`` of the first of them in one commit, so that no request waits for the
    disk and the commits stay few.

    ``stale`` maps each changed file (``source``) to its current sha256: its older rows
    are deleted just before its first new rows are appended (two commits, so a crash in
    between loses only rows that were in flight), and by :meth:`drop_stale` at the end
    of a complete run for the files whose new rows never came.
    """

    def __init__(
        self,
        table: IndexTable,
        stale: Mapping[str, str] | None = None,
        *,
        interval: float = COMMIT_INTERVAL,
    ) -> None:
        self.table = table
        self.interval = interval
        self.written = 0
        self.removed_sources = 0
        self._stale = dict(stale or {})
        self._queue: queue.SimpleQueue[list[Row] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="tongyi-vision-index-writer", daemon=True
        )
        self._thread.start()

    @property
    def failed(self) -> bool:
        """Whether a commit failed (the run should stop: nothing more can be kept)."""
        return self._error is not None

    def put(self, rows: list[Row]) -> None:
        """Hand rows to the writer (never waits for the disk)."""
        if rows:
            self._queue.put(rows)

    def close(self) -> None:
        """Commit what was handed over, stop the thread, and raise a commit's failure."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def drop_stale(self) -> None:
        """Delete the older rows of the changed files that got no new rows in this run."""
        if self._stale:
            self.table.delete_stale(sorted(self._stale.items()))
            self.removed_sources += len(self._stale)
            self._stale.clear()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Gather what arrives for a moment: each commit costs the same whatever it holds,
            # and a commit per request would take a core away from the requests.
            until = time.monotonic() + self.interval
            while None not in batch:
                left = until - time.monotonic()
                try:
                    batch.append(
                        self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            rows = [row for part in batch if part is not None for row in part]
            if rows and self._error is None:
                try:
                    self._commit(rows)
                except BaseException as exc:  # raised by close(), in the command's thread
                    self._error = exc
            if None in batch:
                return

    def _commit(self, rows: list[Row]) -> None:
        changed = sorted({row.source for row in rows if row.source in self._stale})
        if changed:
            self.table.delete_stale([(source, self._stale[source]) for source in changed])
            for source in changed:
                del self._stale[source]
            self.removed_sources += len(changed)
        self.table.add(rows)
        self.written += len(rows)


@dataclass
class EmbedRun:
    """What an embed run did."""

    embedded: dict[str, int] = field(default_factory=lambda: {"text": 0, "image": 0, "video": 0})
    already_done: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped: bool = False
    """An interrupt asked the run to stop after the requests in flight."""

    @property
    def embedded_total(self) -> int:
        return sum(self.embedded.values())


class _Halt(Exception):
    """Raised from a call's progress callback to stop it after its requests in flight."""


class Embedder:
    """Embeds items in calls of ``chunk_size``, handing each request's rows to ``writer``
    as that request finishes."""

    def __init__(
        self,
        client: Client,
        writer: RowWriter,
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
        self._lock = threading.Lock()
        self._error: TongyiVisionError | None = None
        self._abandoned = False

    @property
    def usage(self) -> Usage:
        """What the run's requests cost (the client's usage)."""
        return self.client.usage

    def embed(self, items: Sequence[Item]) -> EmbedRun:
        """Embed ``items``; raise the failure that ``on_error`` stops at (after saving what
        every call finished)."""
        self.reporter.started(len(items))
        chunks = [items[i : i + self.chunk_size] for i in range(0, len(items), self.chunk_size)]
        pool = ThreadPoolExecutor(max_workers=CALLS_IN_FLIGHT, thread_name_prefix="tongyi-call")
        futures: list[Future[None]] = [pool.submit(self._embed_chunk, c) for c in chunks]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Ctrl-C twice: stop the calls at their next request and leave without waiting.
            self._abandoned = True
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        if self._error is not None:
            raise self._error
        return self.run

    def _halted(self) -> bool:
        return (
            self._abandoned or self._error is not None or self.writer.failed or self.should_stop()
        )

    def _embed_chunk(self, chunk: Sequence[Item]) -> None:
        if self._halted():
            if self.should_stop():
                self.run.stopped = True
            return
        items: list[Item] = []
        parts: list[Part] = []
        for item in chunk:
            try:
                parts.append(item.part())
            except InputError as exc:
                if self.on_error == "stop":
                    self._stop_with(named_input_error(exc, item.id))
                    return
                self._fail(item, named_input_error(exc, item.id))
                continue
            items.append(item)
        saved: set[int] = set()
        halted = False

        def progress(event: ProgressEvent) -> None:
            # In the worker that finished a request: hand its rows over, never wait for disk.
            nonlocal halted
            self._save(items, event.vectors, saved)
            if not halted and self._halted():
                halted = True
                raise _Halt

        errors: dict[int, TongyiVisionError] = {}
        try:
            if self.on_error == "skip":
                result = self.client.embed(parts, progress=progress, on_invalid="skip")
                vectors, errors = result.vectors, result.errors
            else:
                vectors = list(self.client.embed(parts, progress=progress).vectors)
        except _Halt:
            if self.should_stop():
                self.run.stopped = True
            return
        except InputError as exc:  # only when stopping at the first bad item
            named = (
                exc if exc.part_index is None else named_input_error(exc, items[exc.part_index].id)
            )
            self._stop_with(named)
            return
        except APIError as exc:
            # Keep what the call finished before the failure stopped it.
            if exc.partial is not None:
                self._save(items, dict(enumerate(exc.partial.vectors)), saved)
            self._stop_with(exc)
            return
        self._save(items, dict(enumerate(vectors)), saved)
        for index, error in sorted(errors.items()):
            if isinstance(error, InputError):
                error = named_input_error(error, items[index].id)
            self._fail(items[index], error)

    def _stop_with(self, error: TongyiVisionError) -> None:
        with self._lock:
            if self._error is None:
                self._error = error

    def _save(
        self, items: list[Item], vectors: Mapping[int, list[float] | None], saved: set[int]
    ) -> None:
        """Hand the writer the rows of the items at these positions not handed over yet."""
        with self._lock:
            done = [(i, v) for i, v in vectors.items() if v is not None and i not in saved]
            saved.update(i for i, _ in done)
            for index, _ in done:
                self.run.embedded[items[index].kind] += 1
            self._done += len(done)
            self.reporter.advanced(self._done)
        self.writer.put([items[i].row(vector) for i, vector in done])

    def _fail(self, item: Item, error: TongyiVisionError) -> None:
        with self._lock:
            failure = Failure(item.id, error)
            self.run.failures.append(failure)
            self.reporter.skipped(failure)
            self._done += 1
            self.reporter.advanced(self._done)


class RayEmbedder:
    """Embeds items on a Ray cluster (``--ray``): the items go to the workers as rows (each
    item's kind and its text or ``file://`` reference: the workers read and prepare the
    files), and the rows that come back are handed to ``writer`` batch by batch, here.

    The planning stays in this process (what is new or changed, by id and sha256), and so
    does the one writer of the index. ``client`` gives the settings the workers' clients
    are made with (its model, dialect, vector size, base URL, key and rate limit); the run
    connects to ``address`` (a local Ray when it is ``None``), unless Ray is running here
    already.
    """

    def __init__(
        self,
        client: Client,
        writer: RowWriter,
        *,
        address: str | None = None,
        max_concurrency: int = 8,
        on_error: OnError = "skip",
        batch_size: int = DEFAULT_CHUNK_SIZE,
        reporter: Reporter | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.writer = writer
        self.address = address
        self.max_concurrency = max_concurrency
        self.on_error = on_error
        self.batch_size = batch_size
        self.reporter: Reporter = reporter or SilentReporter()
        self.should_stop = should_stop
        self.run = EmbedRun()
        self.usage = Usage()
        self._error: TongyiVisionError | None = None

    def embed(self, items: Sequence[Item]) -> EmbedRun:
        """Embed ``items`` on the cluster; raise the failure that ``on_error`` stops at
        (after handing over every row that came back before it)."""
        self.reporter.started(len(items))
        if not items:
            return self.run
        from ..ray import embed_dataset

        with _ray_session(self.address) as ray:
            rows = [
                {"row": i, "kind": item.kind, "content": item.content}
                for i, item in enumerate(items)
            ]
            actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
            results = embed_dataset(
                ray.data.from_items(rows),
                column="content",
                kind_column="kind",
                on_error="skip",
                usage_column=_USAGE_COLUMN,
                concurrency=actors,
                batch_size=min(self.batch_size, _RAY_BATCH_SIZE),
                **self._client_options(),
            )
            try:
                self._collect(items, results)
            except Exception as exc:
                cause = _tongyi_error(exc)
                if cause is None:
                    raise
                self._error = cause
        if self._error is not None:
            raise self._error
        return self.run

    def _client_options(self) -> dict[str, Any]:
        client = self.client
        return {
            "api_key": client.settings.api_key.get(),
            "base_url": client.base_url,
            "model": client.model,
            "dialect": client.dialect,
            "dimension": client.settings.dimension,
            "max_concurrency": self.max_concurrency,
            "rate_limit": client.rate_limit,
        }

    def _collect(self, items: Sequence[Item], results: Any) -> None:
        done = 0
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            if self.writer.failed:
                return
            if self.should_stop():
                self.run.stopped = True
                return
            positions = batch.column("row").to_pylist()
            vectors = batch.column("vector").to_pylist()
            errors = batch.column("error").to_pylist()
            for record in batch.column(_USAGE_COLUMN).to_pylist():
                if record is not None:
                    self.usage = self.usage + Usage(**json.loads(record))
            rows: list[Row] = []
            for position, vector, error in zip(positions, vectors, errors, strict=True):
                item = items[position]
                if vector is not None:
                    rows.append(item.row(vector))
                    self.run.embedded[item.kind] += 1
                    continue
                refused = _refusal(error or "", item.id)
                if self.on_error == "stop":
                    self.writer.put(rows)
                    self._error = refused
                    return
                self.run.failures.append(Failure(item.id, refused))
                self.reporter.skipped(self.run.failures[-1])
            self.writer.put(rows)
            done += len(positions)
            self.reporter.advanced(done)


# Rows per call of a worker's client: the chunks of a local run are larger, but a cluster
# shares its work out by batch.
_RAY_BATCH_SIZE = 256
_USAGE_COLUMN = "usage"


@contextmanager
def _ray_session(address: str | None) -> Iterator[Any]:
    """Ray, connected to ``address`` (a local Ray for ``None``) for the run; a Ray running
    in this process already is used as it is, and left running."""
    import ray

    from ..ray import start_ray

    if ray.is_initialized():
        yield ray
        return
    with warnings.catch_warnings():
        # LanceDB (imported to plan) warns in each child Ray forks; they exec Ray's programs.
        warnings.filterwarnings("ignore", "lancedb fork support", RuntimeWarning)
        start_ray(ray, address, logging_level=logging.ERROR)
    try:
        # The command shows its own progress bar; Ray Data's would write over it.
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        yield ray
    finally:
        ray.shutdown()


# What the workers say of a refused row: ``Type: 'part': reason`` (see tongyi_vision.ray).
_REFUSAL = re.compile(r"(?P<type>\w+): (?:(?:'[^']*'|<[^>]*>): )?(?P<reason>.*)", re.DOTALL)


def _refusal(text: str, item_id: str) -> TongyiVisionError:
    """The error of a row the workers refused, as the class they named (an input error
    names the item, as a local run's does)."""
    match = _REFUSAL.fullmatch(text)
    if match is None:
        return InputError(text or "refused by the workers", part=item_id)
    named = getattr(errors, match["type"], None)
    if isinstance(named, type) and issubclass(named, InputError):
        try:
            return named(match["reason"], part=item_id)
        except TypeError:  # a subclass with another constructor
            return InputError(match["reason"], part=item_id)
    return TongyiVisionError(f"{item_id}: {text}")


def _tongyi_error(exc: BaseException) -> TongyiVisionError | None:
    """The error of ours that a Ray task failed with, found in the chain Ray wraps it in."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, TongyiVisionError):
            return cause  # the error itself, rather than Ray's wrapper (whose text is a trace)
        if isinstance(current, TongyiVisionError):
            return current
        todo += [current.__cause__, current.__context__]
        if isinstance(cause, BaseException):
            todo.append(cause)
    return None


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
    """First Ctrl-C: let the requests in flight finish and be saved, then stop. Second: stop
    now (what had finished is kept)."""
    asked = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal asked
        if asked:
            raise KeyboardInterrupt
        asked = True
        print(
            "\nstopping once the requests in flight are saved (Ctrl-C again to stop now)",
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


def check_out(out: Path) -> str:
    """What is at ``--out``: ``missing``, ``empty`` or ``index``; anything else is refused."""
    what = describe_path(out)
    if what == "jsonl":
        raise InputError(
            "is a JSONL index of an older tongyi-vision; import it first with: "
            f"tongyi-vision import {out} --out NEW_INDEX, then embed into NEW_INDEX",
            part=str(out),
        )
    if what in ("file", "other"):
        raise InputError(
            "is not a folder; --out is the folder of an index (made if missing): "
            "choose another --out",
            part=str(out),
        )
    if what == "folder":
        if not IndexTable.exists(out):
            # Refused before the lock file is made: a folder of other things stays as it was.
            raise InputError(
                "is a folder that holds other files and no tongyi-vision index; choose a new "
                "or empty folder for --out",
                part=str(out),
            )
        return "index"
    return what


def run_embed(args: argparse.Namespace) -> int:
    """The ``embed`` command; returns its exit code."""
    out: Path = args.out
    load_lancedb()  # a missing `index` extra is said before anything is made, read or sent
    if getattr(args, "ray", None) is not None:
        import_module("tongyi_vision.ray")  # and a missing `ray` extra
    before = check_out(out)
    # The lock first: a second run on this index is refused before anything is read or sent.
    lock = WriteLock(out)
    lock.acquire()
    made = False
    try:
        # Again under the lock: a run that held it may have made the index meanwhile.
        what = check_out(out)
        table = IndexTable.open(out) if what == "index" else None
        made = table is None
        return _embed_into(args, table)
    finally:
        lock.release()
        if made:
            _remove_if_unused(out, before)


def _remove_if_unused(out: Path, what: str) -> None:
    """Remove a folder this run made for an index it never created (it failed before)."""
    if IndexTable.exists(out):
        return
    (out / LOCK_FILE).unlink(missing_ok=True)
    if what == "missing":
        with contextlib.suppress(OSError):  # something else was put there meanwhile: leave it
            out.rmdir()


def _embed_into(args: argparse.Namespace, table: IndexTable | None) -> int:
    out: Path = args.out
    info = table.info if table is not None else None
    model = args.model
    if info is not None:
        if model is None:
            model = info.model
        elif model != info.model:
            raise InputError(
                f"holds vectors of {info.model}, not {model}; "
                "use the same --model or another --out",
                part=str(out),
            )
    overrides: dict[str, Any] = {"model": model}
    if info is not None:
        # Going on with an index: its dialect and vector size unless told otherwise.
        overrides["dialect"] = dialect_of(args, info.dialect)
        if args.dimension is None:
            overrides["dimension"] = info.dimension_option()
    with common.make_client(args, **overrides) as client:
        dimension = client.dimension
        if info is not None and dimension is not None and dimension != info.dimension:
            raise InputError(
                f"holds {info.dimension}-dimensional vectors, not {dimension}; "
                "use the same --dimension or another --out",
                part=str(out),
            )
        clip_seconds = _clip_seconds(args.clip_seconds, info, out)
        collected = collect_items(
            args.paths, clip_seconds=clip_seconds, on_error=args.on_error, exclude=out
        )
        reporter = ConsoleReporter(enabled=not args.no_progress)
        for failure in collected.failures:
            reporter.skipped(failure)
        todo, stale, already = _plan(collected, table)
        todo, broken = measure_images(todo)
        for failure in broken:
            error = failure.error
            if args.on_error == "stop" and isinstance(error, InputError):
                raise named_input_error(error, failure.id)
            reporter.skipped(failure)
        collected.failures.extend(broken)
        if table is None:
            if dimension is None:
                raise InputError(
                    f"the vector size of model {client.model!r} is not known; give --dimension",
                    part=str(out),
                )
            table = IndexTable.create(
                out, IndexInfo(client.model, dimension, client.dialect, clip_seconds)
            )
        writer = RowWriter(table, stale)
        with graceful_interrupt() as should_stop:
            embedder: Embedder | RayEmbedder
            if getattr(args, "ray", None) is not None:
                embedder = RayEmbedder(
                    client,
                    writer,
                    address=args.ray or None,
                    max_concurrency=args.max_concurrency,
                    on_error=args.on_error,
                    batch_size=args.chunk_size,
                    reporter=reporter,
                    should_stop=should_stop,
                )
            else:
                embedder = Embedder(
                    client,
                    writer,
                    on_error=args.on_error,
                    chunk_size=args.chunk_size,
                    reporter=reporter,
                    should_stop=should_stop,
                )
            embedder.run.already_done = already
            finished = False
            try:
                embedder.embed(todo)
                finished = True
            finally:
                # Also when a failure stopped the run: keep what finished, say what the index
                # holds and what it cost.
                reporter.close()
                run = embedder.run
                try:
                    writer.close()
                    if finished:
                        _tidy(args, table, writer, collected, run)
                finally:
                    failures = collected.failures + run.failures
                    _print_summary(out, run, failures, collected.ignored, writer)
                    print_usage(embedder.usage)
    if run.stopped:
        fail(INTERRUPTED)
        return EXIT_INTERRUPTED
    if failures:
        return EXIT_INPUT if isinstance(failures[0].error, InputError) else EXIT_API
    return EXIT_OK


def _plan(collected: Collected, table: IndexTable | None) -> tuple[list[Item], dict[str, str], int]:
    """What to embed (new or changed items, each id once), the changed files whose older
    rows go (``{source: sha256}``), and how many items are in the index already."""
    state = table.state() if table is not None else {}
    seen: set[str] = set()
    todo: list[Item] = []
    current: dict[str, str] = {}
    already = 0
    for item in collected.items:
        if item.id in seen:
            continue  # a path given twice, or a file in two of the folders given
        seen.add(item.id)
        current[item.source] = item.sha256
        held = state.get(item.id)
        if held is not None and held[1] == item.sha256:
            already += 1
        else:
            todo.append(item)
    stale = {
        source: current[source]
        for source, sha in set(state.values())
        if source in current and sha != current[source]
    }
    return todo, stale, already


def _tidy(
    args: argparse.Namespace,
    table: IndexTable,
    writer: RowWriter,
    collected: Collected,
    run: EmbedRun,
) -> None:
    """After a complete run: drop what changed files left behind, prune with ``--prune``,
    compact the commits, and build the ANN index once the table is large enough."""
    if run.stopped:
        table.compact()
        return
    writer.drop_stale()
    if args.prune:
        writer.removed_sources += _prune(table, collected)
    table.compact()
    # Never below what the ANN index needs to train on: a small threshold waits for that many.
    threshold = max(args.ann_threshold, ANN_MIN_ROWS) if args.ann_threshold else 0
    if threshold and not table.has_ann() and table.count() >= threshold:
        print(f"building the ANN index of {table.path} ...", file=sys.stderr, flush=True)
        table.build_ann()
        table.compact()


def _prune(table: IndexTable, collected: Collected) -> int:
    """Delete the rows of files that are gone; returns how many files they came from."""
    present = {item.source for item in collected.items}
    rows = table.state()
    gone: set[str] = set()
    for source, _ in set(rows.values()):
        if source in present or source in gone:
            continue
        if not Path(source).exists():
            gone.add(source)
    if gone:
        # A name that is not UTF-8 is stored escaped: its media rows' references still lead
        # to the file, so check those before deleting.
        kept = {
            row.source
            for row in table.get([i for i, (s, _) in rows.items() if s in gone])
            if row.content.startswith("file://") and path_from(row.content).exists()
        }
        gone -= kept
    ids = [i for i, (source, _) in rows.items() if source in gone]
    table.delete_ids(ids)
    return len(gone)


def _clip_seconds(given: float | None, info: IndexInfo | None, out: Path) -> float:
    """The clip length: the index's when it has one, so that a later run cuts the same clips."""
    if info is None:
        return DEFAULT_CLIP_SECONDS if given is None else given
    if given is not None and given != info.clip_seconds:
        raise InputError(
            f"holds clips of {info.clip_seconds:g} s, not {given:g} s; "
            "use the same --clip-seconds or another --out",
            part=str(out),
        )
    return info.clip_seconds


def _print_summary(
    out: Path,
    run: EmbedRun,
    failures: Sequence[Failure],
    ignored: Sequence[str],
    writer: RowWriter,
) -> None:
    kinds = ", ".join(f"{count} {kind}" for kind, count in run.embedded.items() if count)
    total = run.embedded_total
    print(f"embedded {total} item{'s' if total != 1 else ''}" + (f" ({kinds})" if kinds else ""))
    print(f"already in {out}: {run.already_done}")
    if writer.removed_sources:
        print(f"removed the older rows of {writer.removed_sources} changed or deleted file(s)")
    if ignored:
        print(f"ignored {len(ignored)} file(s) that are not images, videos or text files")
    if failures:
        print(
            f"failed: {len(failures)} (listed above on stderr; "
            "run the same command again to retry them)"
        )
    else:
        print("failed: 0")
