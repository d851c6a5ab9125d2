"""``python -m tongyi_vision.emulator`` and ``tongyi-vision serve``: flags, config, serve."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..wire.errors import MissingDependencyError
from ._config import EmulatorConfig, parse_latency, parse_media_root, require_server


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], not {value}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The emulator's command-line flags (documented in docs/emulator.md)."""
    parser = argparse.ArgumentParser(
        prog="tongyi-vision serve",
        description=(
            "A local server that speaks the tongyi-embedding-vision API in both dialects "
            "(openai: POST /v1/embeddings; dashscope: the native multimodal-embedding path). "
            "Its vectors are deterministic but not semantic: for tests and demos."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    add("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    add("--api-key", help="the only key accepted (default: any non-empty Bearer key)")
    add(
        "--media-root",
        action="append",
        default=[],
        type=parse_media_root,
        metavar="URL_PREFIX=DIR",
        help="serve http(s) URLs under URL_PREFIX from files in DIR (repeatable)",
    )
    add(
        "--latency",
        type=parse_latency,
        default=(0.0, 0.0),
        metavar="SECONDS",
        help="delay per embeddings request: fixed (0.1) or a uniform range (0.05-0.2)",
    )
    add("--max-concurrency", type=_positive_int, help="answer 429 beyond N requests in flight")
    add("--rpm", type=_positive_int, help="answer 429 beyond N requests per minute")
    add("--rps", type=float, help="answer 429 beyond R requests per second")
    add(
        "--retry-after",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="Retry-After hint of concurrency and injected 429s (default 1)",
    )
    add("--fail-rate", type=_fraction, default=0.0, help="fraction answered 500 or 503")
    add("--throttle-rate", type=_fraction, default=0.0, help="fraction answered 429 at random")
    add("--drop-rate", type=_fraction, default=0.0, help="fraction dropped without an answer")
    add(
        "--malformed-rate",
        type=_fraction,
        default=0.0,
        help="fraction of 200 answers damaged: bad JSON, truncated, wrong vector count, cut off",
    )
    add(
        "--usage-shape",
        choices=("new", "old"),
        default="new",
        help="native dialect usage: new (input_tokens_details) or old (image_tokens, ...)",
    )
    add("--seed", type=int, default=0, help="seed of random faults and latency (default 0)")
    add(
        "--max-body-bytes",
        type=_positive_int,
        default=EmulatorConfig.max_body_bytes,
        help="answer 413 to larger request bodies",
    )
    add("--access-log", action="store_true", help="log every request to stderr")
    add(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="server log level (default warning)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; the first line printed is its base URL."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            media_roots=tuple(args.media_root),
            latency=args.latency,
            max_concurrency=args.max_concurrency,
            rpm=args.rpm,
            rps=args.rps,
            retry_after=args.retry_after,
            fail_rate=args.fail_rate,
            throttle_rate=args.throttle_rate,
            drop_rate=args.drop_rate,
            malformed_rate=args.malformed_rate,
            usage_shape=args.usage_shape,
            seed=args.seed,
            max_body_bytes=args.max_body_bytes,
            access_log=args.access_log,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        require_server()
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ._server import serve

    try:
        return serve(config)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
