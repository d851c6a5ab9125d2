"""``tongyi-vision search``: embed a query with the index's model and print the nearest items."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..index import Hit, IndexTable
from ..media.image import Image
from ..media.parts import Part
from ..media.video import Video
from ..wire.errors import InputError, MediaNotFoundError
from . import common
from .common import EXIT_OK, dialect_of
from .embed import named_input_error


def check_search(args: argparse.Namespace) -> str | None:
    """A usage error in the search options, or ``None``."""
    given = [q for q in (args.query, args.image, args.video) if q is not None]
    if not given:
        return "give a QUERY text, --image PATH or --video PATH"
    if len(given) > 1:
        return "give one of a QUERY text, --image PATH and --video PATH, not several"
    if args.query is not None and not args.query.strip():
        return "the QUERY text is empty"
    if args.where is not None and not args.where.strip():
        return "the --where filter is empty"
    return None


def run_search(args: argparse.Namespace) -> int:
    """The ``search`` command; returns its exit code."""
    table = IndexTable.open(args.index)
    if table.count() == 0:
        raise InputError(
            "holds no items yet; add some with `tongyi-vision embed`", part=str(args.index)
        )
    # The filter is checked (and its rows counted) before the query is paid for.
    if args.where and table.count(args.where) == 0:
        return _print_hits(args, [])
    info = table.info
    client = common.make_client(
        args,
        model=info.model,
        dialect=dialect_of(args, info.dialect),
        dimension=info.dimension_option(),
    )
    with client:
        part, name = _query(args)
        try:
            result = client.embed([part])
        except InputError as exc:
            raise named_input_error(exc, name) from exc
    return _print_hits(args, table.search(result.vectors[0], args.k, where=args.where))


def _print_hits(args: argparse.Namespace, hits: list[Hit]) -> int:
    if args.json:
        payload = [_record(rank, hit) for rank, hit in enumerate(hits, start=1)]
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not hits:
        print("no rows match --where" if args.where else "no results", file=sys.stderr)
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>3}. {hit.score:+.4f}  {hit.row.kind:<5}  {_label(hit)}")
    return EXIT_OK


def _query(args: argparse.Namespace) -> tuple[Part, str]:
    """The query as a part, and its name for messages."""
    if args.query is not None:
        return args.query, repr(args.query)
    path: Path = args.image if args.image is not None else args.video
    noun = "image" if args.image is not None else "video"
    if not path.is_file():
        raise MediaNotFoundError(f"no such {noun} file; check the path", part=str(path))
    return (Image(path) if args.image is not None else Video(path)), str(path)


def _record(rank: int, hit: Hit) -> dict[str, Any]:
    row = hit.row
    metadata = dict(row.metadata)
    if row.start_seconds is not None:
        metadata.update(start_seconds=row.start_seconds, end_seconds=row.end_seconds)
    return {
        "rank": rank,
        "score": round(hit.score, 6),
        "id": row.id,
        "source": row.source,
        "kind": row.kind,
        "content": row.content,
        "metadata": metadata,
    }


def _label(hit: Hit) -> str:
    row = hit.row
    label = row.id
    if row.kind == "text":
        text = " ".join(row.content.split())
        label += f"  \u201c{text[:70]}{'...' if len(text) > 70 else ''}\u201d"
    return label
