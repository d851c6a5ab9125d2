"""``tongyi-vision search``: embed a query with the index's model and print the nearest items."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..media.image import Image
from ..wire.errors import InputError, MediaNotFoundError
from . import common
from .common import EXIT_OK, dialect_of, dimension_option
from .embed import named_input_error
from .index import read_index, top_k


def check_search(args: argparse.Namespace) -> str | None:
    """A usage error in the search options, or ``None``."""
    if args.query is None and args.image is None:
        return "give a QUERY text or --image PATH"
    if args.query is not None and args.image is not None:
        return "give a QUERY text or --image PATH, not both"
    if args.query is not None and not args.query.strip():
        return "the QUERY text is empty"
    return None


def run_search(args: argparse.Namespace) -> int:
    """The ``search`` command; returns its exit code."""
    index = read_index(args.index)
    for line in index.skipped:
        print(f"warning: {index.path}: {line}; skipped", file=sys.stderr)
    if not index.records:
        raise InputError(
            "holds no items yet; add some with `tongyi-vision embed`", part=str(args.index)
        )
    header = index.header
    client = common.make_client(
        args,
        model=header.model,
        dialect=dialect_of(args, header.dialect),
        dimension=dimension_option(header.model, header.dimension),
    )
    with client:
        if args.image is not None:
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


def _label(record: dict[str, Any]) -> str:
    metadata = record.get("metadata") or {}
    label = str(record.get("id"))
    if record.get("kind") == "text" and isinstance(metadata.get("text"), str):
        text = " ".join(metadata["text"].split())
        label += f"  \u201c{text[:70]}{'...' if len(text) > 70 else ''}\u201d"
    return label
