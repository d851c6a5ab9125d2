"""``tongyi-vision export``, ``import`` and ``index``: an index's rows to and from files, and
its ANN index."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..index import IndexInfo, IndexTable, Row, WriteLock
from ..index.errors import IndexWriteError
from ..index.schema import rows_from_arrow
from ..index.table import describe_path, load_lancedb, not_an_index
from ..wire.errors import InputError
from .common import EXIT_OK
from .embed import check_out
from .jsonl import batched, check_same_settings, read_jsonl, write_jsonl

EXPORT_FORMATS = (".parquet", ".jsonl")
_BATCH = 2048


def check_export(args: argparse.Namespace) -> str | None:
    """A usage error in the export options, or ``None``."""
    if args.to.suffix.lower() not in EXPORT_FORMATS:
        return f"--to FILE must end in .parquet or .jsonl, not {args.to.name!r}"
    return None


def run_export(args: argparse.Namespace) -> int:
    """The ``export`` command: every row (or those ``--where`` picks) to a file."""
    table = IndexTable.open(args.index)
    target: Path = args.to
    if target.exists() and not target.is_file():
        raise InputError("is not a file; choose another --to", part=str(target))
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as handle:
            if target.suffix.lower() == ".parquet":
                count = _write_parquet(handle, table, args.where)
            else:
                count = write_jsonl(handle, table.info, _rows(table, args.where))
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise IndexWriteError(str(target), exc.strerror or str(exc)) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    print(f"exported {count:,} row{'s' if count != 1 else ''} of {args.index} to {target}")
    return EXIT_OK


def _rows(table: IndexTable, where: str | None) -> Iterator[Row]:
    for batch in table.batches(batch_size=_BATCH, where=where):
        yield from rows_from_arrow(batch)


def _write_parquet(handle: Any, table: IndexTable, where: str | None) -> int:
    _, pa = load_lancedb()
    pq = _parquet()

    count = 0
    with pq.ParquetWriter(handle, table.arrow_schema) as writer:
        for batch in table.batches(batch_size=_BATCH, where=where):
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=table.arrow_schema))
            count += batch.num_rows
    return count


def _parquet() -> Any:
    """``pyarrow.parquet`` (imported by name: pyarrow ships no type hints)."""
    return importlib.import_module("pyarrow.parquet")


def run_import(args: argparse.Namespace) -> int:
    """The ``import`` command: a JSONL index (or a Parquet export) into an index folder."""
    source: Path = args.source
    out: Path = args.out
    load_lancedb()  # a missing `index` extra is said before the file is read
    if source.suffix.lower() == ".parquet":
        info, batches, skipped = _read_parquet(source)
    else:
        old = read_jsonl(source)
        info, skipped = old.info, old.skipped
        batches = batched(old.rows.values(), _BATCH)
    for line in skipped:
        print(f"warning: {source}: {line}; skipped", file=sys.stderr)
    check_out(out)  # a file, or a folder of other things, is refused before the lock is made
    with WriteLock(out):
        what = check_out(out)
        table = IndexTable.open(out) if what == "index" else IndexTable.create(out, info)
        check_same_settings(info, table.info, source, out)
        count = 0
        for batch in batches:
            # The imported rows replace those of the same ids, and the older rows of their files.
            table.delete_stale(sorted({(row.source, row.sha256) for row in batch}))
            table.upsert(batch)
            count += len(batch)
        table.compact()
    print(f"imported {count:,} row{'s' if count != 1 else ''} from {source} into {out}")
    if skipped:
        print(f"skipped {len(skipped)} damaged line(s), listed above on stderr")
    return EXIT_OK


def _read_parquet(path: Path) -> tuple[IndexInfo, Iterator[list[Row]], list[str]]:
    load_lancedb()
    pq = _parquet()

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot be read as Parquet ({' '.join(str(exc).split())})", part=str(path)
        ) from exc
    info = IndexInfo.decode(parquet.schema_arrow.metadata, str(path))

    def batches() -> Iterator[list[Row]]:
        for batch in parquet.iter_batches(batch_size=_BATCH):
            yield rows_from_arrow(batch)

    return info, batches(), []


def run_index(args: argparse.Namespace) -> int:
    """The ``index`` command: build (or rebuild) the ANN index."""
    path: Path = args.index
    what = describe_path(path)
    if what != "folder" or not IndexTable.exists(path):
        raise not_an_index(path, what)
    with WriteLock(path):
        table = IndexTable.open(path)
        table.compact()
        rows = table.count()
        partitions = table.build_ann()
        table.compact()
    settings = json.dumps({"partitions": partitions, "rows": rows})
    print(f"built the ANN index of {path} ({table.ann_kind}): {settings}")
    return EXIT_OK
