"""The ``tongyi-vision`` command: ``demo``, ``embed``, ``search`` and ``serve``.

Exit codes: 0 success, 1 any other failure, 2 usage error, 3 input error (a
missing or unreadable file, a refused part, a bad index), 4 API error, 5
configuration error (no API key, a bad setting, a missing extra), 130
interrupted. Every error is one line on stderr that says what to do about it.

Heavy modules (the emulator, LangChain, LlamaIndex, Pillow, PyAV, tqdm) are
imported inside the command that needs them, so ``tongyi-vision --help`` is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import Client
    from ._index import Failure, Index
    from ._types import Usage

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_API = 4
EXIT_CONFIG = 5
EXIT_INTERRUPTED = 130

EPILOG = """\
exit codes: 0 ok, 2 usage error, 3 input error, 4 API error, 5 configuration error
(no API key, missing extra), 130 interrupted, 1 anything else.
environment: EMPIRIOLABS_API_KEY (openai dialect) or DASHSCOPE_API_KEY (dashscope dialect),
TONGYI_VISION_BASE_URL, TONGYI_VISION_MODEL, TONGYI_VISION_DIALECT."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tongyi-vision`` command."""
    parser = argparse.ArgumentParser(
        prog="tongyi-vision",
        description="Embed and search text, images and video with Alibaba's "
        "tongyi-embedding-vision models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="embed and search a generated sample set through LangChain and LlamaIndex",
        description="Generate sample images, texts and a video, index them through LangChain "
        "and LlamaIndex, and run text-to-image, image-to-image, text-to-text and text-to-video "
        "searches. Without an API key it runs against the bundled emulator on 127.0.0.1.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--emulator",
        action="store_true",
        help="use the bundled emulator even when an API key is set",
    )
    demo.add_argument("--no-video", action="store_true", help="leave the sample video out")
    _add_client_options(demo)
    demo.set_defaults(handler=_run_demo)

    embed = commands.add_parser(
        "embed",
        help="embed files and folders into a resumable JSONL index",
        description="Embed images, videos and text files (.txt, .md: long ones are split into "
        "chunks) into a JSONL index. Records are appended as each chunk finishes, so running "
        "the same command again sends only what is not in the index yet.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to embed")
    embed.add_argument(
        "--out", "-o", required=True, type=Path, metavar="FILE", help="the JSONL index to append to"
    )
    embed.add_argument(
        "--clip-seconds",
        type=_positive_float,
        default=None,
        metavar="S",
        help="split videos into clips of S seconds, one vector each (default 10)",
    )
    embed.add_argument(
        "--on-error",
        choices=("skip", "stop"),
        default="skip",
        help="skip a file or part the service refuses and go on (default), or stop at once",
    )
    embed.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=64,
        metavar="N",
        help="items per embed call, each written to the index when it finishes (default 64)",
    )
    embed.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    _add_client_options(embed)
    embed.set_defaults(handler=_run_embed)

    search = commands.add_parser(
        "search",
        help="search an index made by `embed` with a text or an image",
        description="Embed a query with the index's model and print the nearest items by "
        "cosine similarity.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("index", type=Path, metavar="INDEX", help="a JSONL index made by `embed`")
    search.add_argument("query", nargs="?", metavar="QUERY", help="the text to search for")
    search.add_argument(
        "--image", type=Path, metavar="PATH", help="search with this image instead of a text"
    )
    search.add_argument(
        "-k", type=_positive_int, default=5, metavar="N", help="how many results (default 5)"
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    _add_client_options(search, model=False, dimension=False)
    search.set_defaults(handler=_run_search, check=_check_search, subparser=search)

    commands.add_parser(
        "serve",
        help="run the API emulator (see `tongyi-vision serve --help`)",
        add_help=False,
    )
    return parser


def _add_client_options(
    parser: argparse.ArgumentParser, *, model: bool = True, dimension: bool = True
) -> None:
    group = parser.add_argument_group("service")
    if model:
        group.add_argument(
            "--model",
            help="tongyi-embedding-vision-flash (default) or tongyi-embedding-vision-plus",
        )
    group.add_argument(
        "--dialect",
        choices=("openai", "dashscope"),
        help="openai (EmpirioLabs gateway, default) or dashscope (Alibaba Model Studio)",
    )
    if dimension:
        group.add_argument(
            "--dimension",
            type=_positive_int,
            help="vector size (dashscope dialect only; the gateway fixes it)",
        )
    group.add_argument("--base-url", metavar="URL", help="the service's base URL")
    group.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="requests in flight at once (default 8)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tongyi-vision")
    except Exception:  # pragma: no cover - a source tree without metadata
        return "unknown"


# --- errors ---


def _fail(message: str) -> None:
    """Print one error line on stderr (newlines in a provider's message are folded)."""
    print("error: " + " ".join(message.split()), file=sys.stderr)


def _remedy(exc: BaseException) -> str:
    from ._exceptions import (
        APIConnectionError,
        AuthenticationError,
        ConfigurationError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
    )

    message = str(exc)
    if isinstance(exc, ConfigurationError) and message.startswith("no API key"):
        if "DASHSCOPE_API_KEY" in message:
            where = "set DASHSCOPE_API_KEY (the dashscope dialect reads it)"
        else:
            where = "set EMPIRIOLABS_API_KEY (or DASHSCOPE_API_KEY with --dialect dashscope)"
        return (
            f"no API key: {where}; to try it without a key, run `tongyi-vision demo` or "
            "point --base-url at `tongyi-vision serve` with any key"
        )
    if isinstance(exc, AuthenticationError):
        return f"{message}; check the API key (a key of one region is refused by the other)"
    if isinstance(exc, PermissionDeniedError):
        return f"{message}; enable the model for this account in the provider's console"
    if isinstance(exc, NotFoundError):
        return f"{message}; check --model and --base-url"
    if isinstance(exc, APIConnectionError):
        return f"{message}; check --base-url (or TONGYI_VISION_BASE_URL) and the network"
    if isinstance(exc, (RateLimitError, ServerError)):
        return f"{message}; try again later or lower --max-concurrency (re-running resumes)"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tongyi-vision`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "serve":
        # The emulator owns its flags and help; hand it everything after `serve`.
        from .emulator import main as serve_main

        return serve_main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    check: Callable[[argparse.Namespace], str | None] | None = getattr(args, "check", None)
    problem = check(args) if check is not None else None
    if problem:
        args.subparser.error(problem)  # exits with status 2, like every usage error
    handler: Callable[[argparse.Namespace], int] = args.handler
    return run_handler(handler, args)


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command, turning each kind of failure into its exit code and one stderr line."""
    from ._exceptions import (
        APIError,
        ConfigurationError,
        InputError,
        MissingDependencyError,
        TongyiVisionError,
    )

    try:
        return handler(args)
    except KeyboardInterrupt:
        if getattr(args, "command", None) == "embed":
            _fail(
                "interrupted; the index keeps every finished chunk: run the same command to go on"
            )
        else:
            _fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `tongyi-vision search ... | head`: the reader left. Point stdout at /dev/null so that
        # the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (ConfigurationError, MissingDependencyError) as exc:
        _fail(_remedy(exc))
        return EXIT_CONFIG
    except InputError as exc:
        _fail(str(exc))
        return EXIT_INPUT
    except APIError as exc:
        _fail(_remedy(exc))
        return EXIT_API
    except TongyiVisionError as exc:
        _fail(str(exc))
        return EXIT_FAILED


# --- embed ---


class _Bar:
    """A tqdm bar on stderr, or nothing when tqdm is missing or the bar is turned off."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def started(self, total: int) -> None:
        if not self._enabled or total == 0:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        # disable=None: no bar when stderr is not a terminal (logs stay readable).
        self._bar = tqdm(total=total, unit="item", file=sys.stderr, disable=None, desc="embed")

    def advanced(self, done: int) -> None:
        if self._bar is not None and done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def skipped(self, failure: Failure) -> None:
        from ._exceptions import InputError

        error = failure.error
        reason = error.reason if isinstance(error, InputError) else str(error)
        line = f"skipped {failure.id}: {' '.join(reason.split())}"
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def _graceful_interrupt() -> Iterator[Callable[[], bool]]:
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


def _client(args: argparse.Namespace, **overrides: Any) -> Client:
    from ._client import Client

    settings = {
        "model": getattr(args, "model", None),
        "dialect": args.dialect,
        "dimension": getattr(args, "dimension", None),
        "base_url": args.base_url,
        "max_concurrency": args.max_concurrency,
        **overrides,
    }
    return Client(**settings)


def _run_embed(args: argparse.Namespace) -> int:
    from ._exceptions import InputError
    from ._index import Embedder, Header, IndexWriter, collect_items, read_index

    out: Path = args.out
    index = read_index(out) if out.exists() and out.stat().st_size > 0 else None
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
        overrides["dialect"] = _dialect(args, index.header.dialect)
        if args.dimension is None:
            overrides["dimension"] = _dimension_option(index.header.model, index.header.dimension)
    client = _client(args, **overrides)
    with client:
        dimension = client.dimension
        if index is not None and dimension is not None and dimension != index.header.dimension:
            raise InputError(
                f"holds {index.header.dimension}-dimensional vectors, not {dimension}; "
                "use the same --dimension or another --out",
                part=str(out),
            )
        clip_seconds = _clip_seconds(args.clip_seconds, index, out)
        collected = collect_items(args.paths, clip_seconds=clip_seconds, on_error=args.on_error)
        bar = _Bar(enabled=not args.no_progress)
        for failure in collected.failures:
            bar.skipped(failure)
        header = Header(client.model, dimension or 0, client.dialect, clip_seconds=clip_seconds)
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = IndexWriter(out, header, new=index is None)
        with _graceful_interrupt() as should_stop:
            embedder = Embedder(
                client,
                writer,
                on_error=args.on_error,
                chunk_size=args.chunk_size,
                reporter=bar,
                should_stop=should_stop,
            )
            try:
                embedder.embed(collected.items, index)
            finally:
                # Also when a failure stops the run: say what the index holds and what it cost.
                bar.close()
                writer.close()
                run = embedder.run
                failures = collected.failures + run.failures
                _print_embed_summary(
                    out, run.embedded, run.already_done, failures, collected.ignored
                )
                _print_usage(client.usage)
    if run.stopped:
        _fail("interrupted; the index keeps every finished chunk: run the same command to go on")
        return EXIT_INTERRUPTED
    if failures:
        return EXIT_INPUT if _is_input_failure(failures[0]) else EXIT_API
    return EXIT_OK


def _clip_seconds(given: float | None, index: Index | None, out: Path) -> float:
    """The clip length: the index's when it has one, so that a later run cuts the same clips."""
    from ._clips import DEFAULT_CLIP_SECONDS
    from ._exceptions import InputError

    if index is None:
        return DEFAULT_CLIP_SECONDS if given is None else given
    if given is not None and given != index.header.clip_seconds:
        raise InputError(
            f"holds clips of {index.header.clip_seconds:g} s, not {given:g} s; "
            "use the same --clip-seconds or another --out",
            part=str(out),
        )
    return index.header.clip_seconds


def _is_input_failure(failure: Failure) -> bool:
    from ._exceptions import InputError

    return isinstance(failure.error, InputError)


def _print_embed_summary(
    out: Path,
    embedded: dict[str, int],
    already_done: int,
    failures: Sequence[Failure],
    ignored: Sequence[str],
) -> None:
    kinds = ", ".join(f"{count} {kind}" for kind, count in embedded.items() if count)
    total = sum(embedded.values())
    print(f"embedded {total} item{'s' if total != 1 else ''}" + (f" ({kinds})" if kinds else ""))
    print(f"already in {out}: {already_done}")
    if ignored:
        print(f"ignored {len(ignored)} file(s) that are not images, videos or text files")
    if failures:
        print(
            f"failed: {len(failures)} (listed above on stderr; "
            "run the same command again to retry them)"
        )
    else:
        print("failed: 0")


def _print_usage(usage: Usage) -> None:
    split = ""
    if usage.text_tokens or usage.media_tokens:
        estimated = ", estimated split" if usage.modality_estimated else ""
        split = f" (text {usage.text_tokens:,}, media {usage.media_tokens:,}{estimated})"
    print(
        f"usage: {usage.total_tokens:,} tokens{split}, {usage.requests} request"
        f"{'s' if usage.requests != 1 else ''}, {usage.retries} retries, "
        f"cost ${usage.cost_usd:.6f}"
    )


# --- search ---


def _check_search(args: argparse.Namespace) -> str | None:
    if args.query is None and args.image is None:
        return "give a QUERY text or --image PATH"
    if args.query is not None and args.image is not None:
        return "give a QUERY text or --image PATH, not both"
    if args.query is not None and not args.query.strip():
        return "the QUERY text is empty"
    return None


def _run_search(args: argparse.Namespace) -> int:
    from ._exceptions import InputError
    from ._index import read_index, top_k

    index = read_index(args.index)
    if not index.records:
        raise InputError(
            "holds no items yet; add some with `tongyi-vision embed`", part=str(args.index)
        )
    header = index.header
    client = _client(
        args,
        model=header.model,
        dialect=_dialect(args, header.dialect),
        dimension=_dimension_option(header.model, header.dimension),
    )
    with client:
        if args.image is not None:
            from ._exceptions import MediaNotFoundError
            from ._index import named_input_error
            from ._parts import Image

            if not args.image.is_file():
                raise MediaNotFoundError("no such image file; check the path", part=str(args.image))
            try:
                result = client.embed([Image(args.image)])
            except InputError as exc:
                raise named_input_error(exc, str(args.image)) from exc
        else:
            result = client.embed([args.query])
    hits = top_k(index, result.vectors[0], args.k)
    if args.json:
        payload = [
            {
                "rank": rank,
                "score": round(hit.score, 6),
                "id": hit.record["id"],
                "source": hit.record.get("source"),
                "kind": hit.record.get("kind"),
                "metadata": hit.record.get("metadata", {}),
            }
            for rank, hit in enumerate(hits, start=1)
        ]
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        print(
            f"{rank:>3}. {hit.score:+.4f}  {hit.record.get('kind', '?'):<5}  {_label(hit.record)}"
        )
    return EXIT_OK


def _dialect(args: argparse.Namespace, of_index: str) -> str:
    """``--dialect``, else ``TONGYI_VISION_DIALECT``, else the dialect the index was made with."""
    return str(args.dialect or os.environ.get("TONGYI_VISION_DIALECT") or of_index)


def _dimension_option(model: str, dimension: int) -> int | None:
    """The ``dimension`` to ask for: ``None`` when it is the model's own size."""
    from ._limits import MODELS, base_model

    spec = MODELS.get(base_model(model))
    return None if spec is not None and spec.default_dimension == dimension else dimension


def _label(record: dict[str, Any]) -> str:
    metadata = record.get("metadata") or {}
    label = str(record.get("id"))
    if record.get("kind") == "text" and isinstance(metadata.get("text"), str):
        text = " ".join(metadata["text"].split())
        label += f"  \u201c{text[:70]}{'...' if len(text) > 70 else ''}\u201d"
    return label


# --- demo ---


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
