"""``python -m tongyi_vision.emulator`` and ``tongyi-vision serve``: flags, config, serve."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence

from ..wire.errors import MissingDependencyError
from ._config import (
    REGIONS,
    EmulatorConfig,
    Region,
    parse_key_region,
    parse_latency,
    parse_media_root,
    require_server,
)

# Where the key may come from instead of --api-key: a flag is visible to every user in `ps`.
API_KEY_VARIABLE = "TONGYI_VISION_EMULATOR_API_KEY"


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


def _factor(value: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number >= 1):
        raise argparse.ArgumentTypeError(f"must be a factor >= 1, not {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be seconds > 0, not {value}")
    return number


def _key_region(value: str) -> tuple[str, Region]:
    try:
        return parse_key_region(value)
    except ValueError as exc:  # its message hides the key, argparse's own would not
        raise argparse.ArgumentTypeError(str(exc)) from exc


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
    add(
        "--api-key",
        help=(
            f"the only key accepted besides --key-region keys (default: ${API_KEY_VARIABLE} "
            "if set, which keeps the key out of `ps`; else any non-empty Bearer key); the flag "
            "wins over the variable"
        ),
    )
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
    add(
        "--rpm",
        type=_positive_int,
        metavar="N",
        help=(
            "answer 429 Throttling.RateQuota beyond N requests per minute, and (from 60 up) "
            "beyond N/60 per second"
        ),
    )
    add("--rps", type=float, help="answer 429 Throttling.RateQuota beyond R requests per second")
    add(
        "--tpm",
        type=_positive_int,
        metavar="N",
        help=(
            "answer 429 Throttling.AllocationQuota beyond N tokens per minute, and beyond N/60 "
            "per second (a request larger than that passes when nothing else is counted)"
        ),
    )
    add(
        "--surge",
        type=_factor,
        metavar="FACTOR",
        help=(
            "answer 429 Throttling (request rate increased too quickly) to a request that "
            "would make the last second hold more than FACTOR times the requests per second "
            "of the minute before, counted as at least 1 per second"
        ),
    )
    add(
        "--region",
        choices=REGIONS,
        help=(
            "the region the emulator plays on the native path: a key bound to the other one "
            "by --key-region gets 401 InvalidApiKey (default: both, any bound key is accepted)"
        ),
    )
    add(
        "--key-region",
        action="append",
        default=[],
        type=_key_region,
        metavar="KEY=REGION",
        help=(
            "bind KEY to a region (singapore or beijing), repeatable; bound keys are accepted "
            "beside --api-key, and refused by an emulator playing the other --region"
        ),
    )
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
    add(
        "--keep-alive-timeout",
        type=_seconds,
        default=EmulatorConfig.keep_alive_timeout,
        metavar="SECONDS",
        help="close a connection idle this long between requests (default 5)",
    )
    add(
        "--header-timeout",
        type=_seconds,
        default=EmulatorConfig.header_timeout,
        metavar="SECONDS",
        help=(
            "close a connection whose request line and headers are not complete this long "
            "after their first byte, or after connecting (default 5)"
        ),
    )
    add(
        "--max-header-bytes",
        type=_positive_int,
        default=EmulatorConfig.max_header_bytes,
        help="answer 431 to a larger request line and headers (default 64 KiB)",
    )
    add("--access-log", action="store_true", help="log every request to stderr")
    add(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="server log level (default warning)",
    )
    return parser


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> EmulatorConfig:
    """The config the parsed flags describe. Without ``--api-key`` the key comes from
    ``$TONGYI_VISION_EMULATOR_API_KEY`` in ``environ`` (default ``os.environ``), if set.
    Raises ``ValueError`` for a bad value or combination."""
    environ = os.environ if environ is None else environ
    api_key = args.api_key
    if api_key is None:
        # An empty variable counts as unset, as it does for most tools.
        api_key = environ.get(API_KEY_VARIABLE) or None
        if api_key is not None and not api_key.strip():
            raise ValueError(f"${API_KEY_VARIABLE} is blank: unset it to accept any key")
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        api_key=api_key,
        media_roots=tuple(args.media_root),
        latency=args.latency,
        max_concurrency=args.max_concurrency,
        rpm=args.rpm,
        rps=args.rps,
        tpm=args.tpm,
        surge=args.surge,
        region=args.region,
        key_regions=tuple(args.key_region),
        retry_after=args.retry_after,
        fail_rate=args.fail_rate,
        throttle_rate=args.throttle_rate,
        drop_rate=args.drop_rate,
        malformed_rate=args.malformed_rate,
        usage_shape=args.usage_shape,
        seed=args.seed,
        max_body_bytes=args.max_body_bytes,
        keep_alive_timeout=args.keep_alive_timeout,
        header_timeout=args.header_timeout,
        max_header_bytes=args.max_header_bytes,
        access_log=args.access_log,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; the first line printed is its base URL."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
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
