"""What every command shares: exit codes, the one-line error, the client from the options."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..engine.client import Client
from ..engine.ratelimit import RateLimit
from ..wire.results import Usage

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_API = 4
EXIT_CONFIG = 5
EXIT_INTERRUPTED = 130


def fail(message: str) -> None:
    """Print one error line on stderr (newlines in a provider's message are folded)."""
    print("error: " + " ".join(message.split()), file=sys.stderr)


def make_client(args: argparse.Namespace, **overrides: Any) -> Client:
    """A client from the service options of a command, ``overrides`` winning.

    The commands call it as ``common.make_client``, so a test can hand them a
    client of its own by replacing this one attribute.
    """
    settings = {
        "model": getattr(args, "model", None),
        "dialect": args.dialect,
        "dimension": getattr(args, "dimension", None),
        "base_url": args.base_url,
        "max_concurrency": args.max_concurrency,
        "rate_limit": rate_limit_of(args),
        **overrides,
    }
    return Client(**settings)


def rate_limit_of(args: argparse.Namespace) -> RateLimit | None:
    """The :class:`RateLimit` that ``--rpm`` and ``--tpm`` give (``None`` without either)."""
    rpm, tpm = getattr(args, "rpm", None), getattr(args, "tpm", None)
    if rpm is None and tpm is None:
        return None
    return RateLimit(requests_per_minute=rpm, tokens_per_minute=tpm)


def dialect_of(args: argparse.Namespace, of_index: str) -> str:
    """``--dialect``, else ``TONGYI_VISION_DIALECT``, else the dialect the index was made with."""
    return str(args.dialect or os.environ.get("TONGYI_VISION_DIALECT") or of_index)


def print_usage(usage: Usage) -> None:
    split = ""
    if usage.text_tokens or usage.media_tokens:
        estimated = ", estimated split" if usage.modality_estimated else ""
        split = f" (text {usage.text_tokens:,}, media {usage.media_tokens:,}{estimated})"
    print(
        f"usage: {usage.total_tokens:,} tokens{split}, {usage.requests} request"
        f"{'s' if usage.requests != 1 else ''}, {usage.retries} retries, "
        f"cost ${usage.cost_usd:.6f}"
    )
