"""The ``tongyi-vision`` command: ``demo``, ``embed``, ``search``, ``index``, ``export``,
``import``, ``ui`` and ``serve``.

Exit codes: 0 success, 1 any other failure, 2 usage error, 3 input error (a
missing or unreadable file, a refused part, a bad index), 4 API error, 5
configuration error (no API key, a bad setting, a missing extra), 130
interrupted. Every error is one line on stderr that says what to do about it.

Heavy modules (the emulator's server, LangChain, LlamaIndex, LanceDB, Pillow, PyAV, tqdm)
are imported inside the command that needs them, so ``tongyi-vision --help`` is quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..index import DEFAULT_ANN_THRESHOLD
from ..index.table import ANN_MIN_ROWS
from ..wire.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TongyiVisionError,
)
from .common import EXIT_API, EXIT_CONFIG, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, fail
from .demo import run_demo
from .embed import DEFAULT_CHUNK_SIZE, INTERRUPTED, run_embed
from .search import check_search, run_search
from .transfer import check_export, run_export, run_import, run_index
from .ui import DEFAULT_PORT, check_ui, run_ui

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
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = _command(
        commands,
        "demo",
        run_demo,
        help="embed and search a generated sample set through LangChain and LlamaIndex",
        description="Generate sample images, texts and a video, index them through LangChain "
        "and LlamaIndex, and run text-to-image, image-to-image, text-to-text and text-to-video "
        "searches. Without an API key it runs against the bundled emulator on 127.0.0.1.",
    )
    demo.add_argument(
        "--emulator",
        action="store_true",
        help="use the bundled emulator even when an API key is set",
    )
    demo.add_argument("--no-video", action="store_true", help="leave the sample video out")
    demo.add_argument(
        "--ui",
        action="store_true",
        help="index the samples and serve them in the search page instead (prints its URL)",
    )
    _add_page_options(demo)
    demo.set_defaults(check=check_ui, subparser=demo)

    embed = _command(
        commands,
        "embed",
        run_embed,
        help="embed files and folders into a resumable index (a LanceDB table)",
        description="Embed images, videos and text files (.txt, .md: long ones are split into "
        "chunks) into an index, a folder holding a LanceDB table. Rows are committed as each "
        "request finishes, so running the same command again sends only what is new or "
        "changed. Needs the index extra: pip install 'tongyi-vision[index]'.",
    )
    embed.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to embed")
    embed.add_argument(
        "--out",
        "-o",
        required=True,
        type=Path,
        metavar="INDEX",
        help="the index folder to write (made if missing, added to if not)",
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
        default=DEFAULT_CHUNK_SIZE,
        metavar="N",
        help=f"items per embed call, what the client holds in memory at once; each request's "
        f"rows are committed as it finishes (default {DEFAULT_CHUNK_SIZE})",
    )
    embed.add_argument(
        "--prune",
        action="store_true",
        help="remove the rows of files that no longer exist",
    )
    embed.add_argument(
        "--ann-threshold",
        type=_count,
        default=DEFAULT_ANN_THRESHOLD,
        metavar="ROWS",
        help=f"build the approximate nearest-neighbour index once the table has ROWS rows "
        f"(default {DEFAULT_ANN_THRESHOLD:,}, at least {ANN_MIN_ROWS:,}; 0: never)",
    )
    embed.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    embed.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="embed on a Ray cluster (ray.init(address=ADDRESS); without ADDRESS a local Ray): "
        "the workers read and prepare the files, this process plans and writes the index. "
        "On several machines the paths must be readable on every node. Needs the ray extra: "
        "pip install 'tongyi-vision[ray]'",
    )

    search = _command(
        commands,
        "search",
        run_search,
        index_settings=True,
        help="search an index made by `embed` with a text, an image or a video",
        description="Embed a query with the index's model and print the nearest items by "
        "cosine similarity (exact, or with the index's ANN index once it has one).",
    )
    search.add_argument("index", type=Path, metavar="INDEX", help="an index made by `embed`")
    search.add_argument("query", nargs="?", metavar="QUERY", help="the text to search for")
    search.add_argument(
        "--image", type=Path, metavar="PATH", help="search with this image instead of a text"
    )
    search.add_argument(
        "--video", type=Path, metavar="PATH", help="search with this video instead of a text"
    )
    search.add_argument(
        "-k", type=_positive_int, default=5, metavar="N", help="how many results (default 5)"
    )
    search.add_argument(
        "--where",
        metavar="SQL",
        help="a LanceDB SQL filter on the columns, applied first: \"kind = 'image'\", "
        "\"source LIKE '/photos/%%'\"",
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.set_defaults(check=check_search, subparser=search)

    index = commands.add_parser(
        "index",
        help="build (or rebuild) the ANN index of an index for fast search",
        description="Build the approximate nearest-neighbour index (IVF with RaBitQ codes, "
        "re-ranked on the full vectors) over every row of an index. `embed` builds it by "
        "itself once the table reaches --ann-threshold rows; run this after a large change, "
        "or to build it earlier.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument("index", type=Path, metavar="INDEX", help="an index made by `embed`")
    index.set_defaults(handler=run_index)

    export = commands.add_parser(
        "export",
        help="write an index's rows to a Parquet or JSONL file",
        description="Write every row of an index (vectors, metadata, the text or media "
        "reference) to FILE.parquet (with the index's settings in its schema metadata) or "
        "FILE.jsonl (the format of the JSONL indexes of earlier versions, which "
        "`import` reads back).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("index", type=Path, metavar="INDEX", help="an index made by `embed`")
    export.add_argument(
        "--to", required=True, type=Path, metavar="FILE", help="FILE.parquet or FILE.jsonl"
    )
    export.add_argument("--where", metavar="SQL", help="export only the rows of this filter")
    export.set_defaults(handler=run_export, check=check_export, subparser=export)

    import_ = commands.add_parser(
        "import",
        help="turn a JSONL index of an earlier version (or an export) into an index",
        description="Read a JSONL index written by earlier versions of `embed` (or by "
        "`export --to FILE.jsonl`) into an index folder, created or added to; nothing is "
        "sent to the service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_.add_argument("source", type=Path, metavar="OLD.jsonl", help="the JSONL index to read")
    import_.add_argument(
        "--out", "-o", required=True, type=Path, metavar="INDEX", help="the index folder to write"
    )
    import_.set_defaults(handler=run_import)

    ui = _command(
        commands,
        "ui",
        run_ui,
        index_settings=True,
        help="serve a local web page to search an index by text, image or video",
        description="Serve a page on 127.0.0.1 to search an index made by `embed`: type a "
        "text, drop a picture or choose a video, filter by kind, look at the results "
        "(thumbnails, clips that play from their time, texts) and find more like any of them. "
        "Prints the URL first; opens no browser. Without an API key (and no --base-url) "
        "queries go to the bundled emulator. Needs the ui extra: pip install "
        "'tongyi-vision[ui]'.",
    )
    ui.add_argument("index", type=Path, metavar="INDEX", help="an index made by `embed`")
    ui.add_argument(
        "-k",
        type=_positive_int,
        default=12,
        metavar="N",
        help="how many results the page shows at first (default 12, at most 200)",
    )
    ui.add_argument(
        "--thumbnails",
        type=Path,
        metavar="DIR",
        help="where thumbnails are kept (default: ~/.cache/tongyi-vision/thumbnails, or "
        "$XDG_CACHE_HOME/tongyi-vision/thumbnails)",
    )
    _add_page_options(ui)
    ui.set_defaults(check=check_ui, subparser=ui)

    commands.add_parser(
        "serve",
        help="run the API emulator (see `tongyi-vision serve --help`)",
        add_help=False,
    )
    return parser


def _command(
    commands: Any,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    index_settings: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand with its handler, the service options and the common epilog (exit codes,
    environment); ``index_settings``: the model and vector size come from the index."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_client_options(parser, model=not index_settings, dimension=not index_settings)
    parser.set_defaults(handler=handler)
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
    group.add_argument(
        "--rpm",
        type=_positive_int,
        metavar="N",
        help="your account's requests per minute for the model: requests go out evenly "
        "within it (default: unknown, learnt from 429s)",
    )
    group.add_argument(
        "--tpm",
        type=_positive_int,
        metavar="N",
        help="your account's tokens per minute for the model (default: unknown)",
    )


def _add_page_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("page")
    group.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"the port to listen on (default {DEFAULT_PORT}; 0: any free port)",
    )
    group.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address to listen on (default 127.0.0.1: this machine only; another "
        "address makes the page, the index's files and your key's quota reachable from "
        "other machines)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


# --- errors ---


def _remedy(exc: BaseException) -> str:
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
        from ..emulator import main as serve_main  # only here: `--help` stays quick

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
    try:
        return handler(args)
    except KeyboardInterrupt:
        if getattr(args, "command", None) == "embed":
            fail(INTERRUPTED)
        else:
            fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `tongyi-vision search ... | head`: the reader left. Point stdout at /dev/null so that
        # the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (ConfigurationError, MissingDependencyError) as exc:
        fail(_remedy(exc))
        return EXIT_CONFIG
    except InputError as exc:
        fail(str(exc))
        return EXIT_INPUT
    except APIError as exc:
        fail(_remedy(exc))
        return EXIT_API
    except TongyiVisionError as exc:
        fail(str(exc))
        return EXIT_FAILED
    except OSError as exc:
        # A file system that failed under us (a disk gone, a read error): one line, no traceback.
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}; fix the cause and run the same command again")
        return EXIT_FAILED
