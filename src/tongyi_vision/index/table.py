"""Opening, creating, locking, writing and searching an index's LanceDB table.

An index is a folder: a LanceDB database holding the table ``items`` (see
:mod:`.schema`) and a lock file. Writers (``embed``, ``import``, ``index``, a
store adding documents) hold the folder's exclusive lock while they write, so
there is one at a time; readers need no lock (LanceDB readers see whole commits).

Search is by cosine similarity: exact (a scan of every vector) until the table
has an approximate nearest-neighbour index (IVF partitions of RaBitQ codes, with
the candidates re-ranked on the full vectors), which ``embed`` builds past
:data:`~.schema.DEFAULT_ANN_THRESHOLD` rows and ``tongyi-vision index`` builds
by hand.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from ..wire.errors import InputError, MissingDependencyError
from .errors import IndexBusyError, IndexWriteError, NotAnIndexError
from .schema import (
    COLUMNS,
    TABLE_NAME,
    Hit,
    IndexInfo,
    Row,
    arrow_schema,
    rows_from_arrow,
    rows_to_arrow,
    sql_in,
    sql_string,
)

LOCK_FILE = ".tongyi-vision.lock"
# An IN list of at most this many values per statement: a long one costs LanceDB more to plan.
_IN_BATCH = 500
# The ANN index: IVF partitions of about this many rows, each vector's RaBitQ code (1 bit a
# dimension) in its partition; a query probes ANN_NPROBES partitions and re-ranks ANN_REFINE x k
# candidates on the full vectors. RaBitQ trains only the IVF centres: at 200,000 rows it built
# 8x faster than PQ of 8-dimension sub-vectors, for the same recall (benchmarks/index_search.py).
ANN_ROWS_PER_PARTITION = 4096
ANN_MIN_PARTITIONS = 16
ANN_MAX_PARTITIONS = 1024
ANN_NPROBES = 20
ANN_REFINE = 20
# IVF training needs a few rows per partition (k-means samples 256 a partition at most).
ANN_MIN_ROWS = 5_000
_WITHOUT_VECTOR = [c for c in COLUMNS if c != "vector"]
# Exact search of a table of at most this many rows runs, from its second search on, on a
# copy of its vectors held in memory (numpy; at most 150 MB at 768 dimensions): LanceDB's flat
# search reads and decodes the whole vector column for every query, about 25 ms at 10,000
# rows on 2 cores, where a product with the matrix takes about 1 ms.
MEMORY_SEARCH_ROWS = 50_000


def load_lancedb() -> tuple[ModuleType, ModuleType]:
    """``lancedb`` and ``pyarrow``, imported on first use (the ``index`` extra)."""
    # LanceDB's native logger prints a WARN line when a table is created; keep stderr for
    # what matters unless the user asked for its logs.
    os.environ.setdefault("LANCEDB_LOG", "error")
    try:
        import lancedb

        # By name: pyarrow ships no type hints, and its module is used as Any here.
        pyarrow = importlib.import_module("pyarrow")
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "lancedb", "index", "An index (a LanceDB table)"
        ) from exc
    return lancedb, pyarrow


def describe_path(path: Path) -> str:
    """What is at ``path``, for messages: ``missing``, ``jsonl``, ``file``, ``folder``,
    ``empty``, ``other`` (a FIFO, a device)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", part=str(path)) from exc
    if stat.S_ISDIR(mode):
        try:
            with os.scandir(path) as entries:
                names = {entry.name for entry in entries}
        except OSError as exc:
            raise InputError(f"cannot be listed ({exc.strerror or exc})", part=str(path)) from exc
        return "empty" if not names - {LOCK_FILE} else "folder"
    if not stat.S_ISREG(mode):
        return "other"
    return "jsonl" if _is_jsonl_index(path) else "file"


def _is_jsonl_index(path: Path) -> bool:
    """Whether a file starts like the JSONL index of tongyi-vision before LanceDB."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"{") and b'"tongyi-vision-index"' in first


def not_an_index(path: Path, what: str) -> NotAnIndexError:
    """The error for a path that holds no index, saying what to do about what is there."""
    reasons = {
        "missing": "no such index; make one with: tongyi-vision embed PATH... --out INDEX",
        "jsonl": "is a JSONL index of an older tongyi-vision; import it into a LanceDB index "
        "with: tongyi-vision import OLD.jsonl --out INDEX",
        "file": "is a file, not an index (an index is a folder made by tongyi-vision embed)",
        "other": "is not a folder; give the folder of an index",
        "empty": "holds no index yet; add items with: tongyi-vision embed PATH... --out INDEX",
        "folder": "is a folder that holds no tongyi-vision index; give the folder "
        "tongyi-vision embed --out made",
    }
    return NotAnIndexError(reasons[what], part=str(path))


class WriteLock:
    """The exclusive lock of an index folder: one writer at a time.

    Taken without waiting: a second writer is refused with :class:`IndexBusyError`
    at once. The folder is made if it does not exist.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._handle: Any = None

    def acquire(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = (self.folder / LOCK_FILE).open("a+b")
        except OSError as exc:
            raise InputError(
                f"cannot be written ({exc.strerror or exc}); choose another folder for the index",
                part=str(self.folder),
            ) from exc
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no lock
            self._handle = handle
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise IndexBusyError(
                "is being written by another tongyi-vision run (embed, import or index) or a "
                "store adding documents; wait for it to finish, or write to another index",
                part=str(self.folder),
            ) from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failed write (a full disk, a folder made read-only) as :class:`IndexWriteError`."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
        raise IndexWriteError(str(path), reason) from exc


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A table that cannot be read (files missing or damaged) as an input error naming it."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise NotAnIndexError(
            f"cannot be read ({reason}); restore the folder, or build the index again with "
            "tongyi-vision embed",
            part=str(path),
        ) from exc


class IndexTable:
    """The ``items`` table of an index folder, with the settings that made its vectors.

    >>> table = IndexTable.open(Path("photos.index"))
    >>> table.info.model, table.count()
    >>> table.search(vector, k=5, where="kind = 'image'")
    """

    def __init__(self, path: Path, table: Any, info: IndexInfo, pyarrow: ModuleType) -> None:
        self.path = path
        self.info = info
        self._table = table
        self._pa = pyarrow
        self._schema = arrow_schema(pyarrow, info)
        self._ann: bool | None = None
        self._held: _HeldVectors | None = None
        self._searches = 0
        self.ann_kind = ""
        """The kind of ANN index :meth:`build_ann` built (``IVF_RQ``, or ``IVF_PQ``)."""

    # --- opening ---

    @staticmethod
    def exists(path: Path) -> bool:
        """Whether the folder ``path`` holds an index's table (without opening it)."""
        return (path / f"{TABLE_NAME}.lance").is_dir()

    @classmethod
    def open(cls, path: Path, *, consistent: bool = False) -> IndexTable:
        """Open the index at ``path``; :class:`NotAnIndexError` if there is none.

        ``consistent``: every read sees the latest commit, also one made by another
        process after opening (a long-lived store); otherwise reads see the table as
        it was when opened, plus this object's own writes.
        """
        what = describe_path(path)
        if what != "folder":
            raise not_an_index(path, what)
        lancedb, pyarrow = load_lancedb()
        interval = timedelta(0) if consistent else None
        with _reading(path):
            db = lancedb.connect(path, read_consistency_interval=interval)
            if TABLE_NAME not in db.list_tables().tables:
                raise not_an_index(path, "folder")
            table = db.open_table(TABLE_NAME)
            info = IndexInfo.decode(table.schema.metadata, str(path))
        return cls(path, table, info, pyarrow)

    @classmethod
    def create(cls, path: Path, info: IndexInfo, *, consistent: bool = False) -> IndexTable:
        """Make the table of a new index in the folder ``path`` (made if missing)."""
        lancedb, pyarrow = load_lancedb()
        interval = timedelta(0) if consistent else None
        with _writing(path):
            path.mkdir(parents=True, exist_ok=True)
            db = lancedb.connect(path, read_consistency_interval=interval)
            table = db.create_table(TABLE_NAME, schema=arrow_schema(pyarrow, info))
        opened = cls(path, table, IndexInfo.decode(table.schema.metadata, str(path)), pyarrow)
        opened._ann = False
        return opened

    # --- reading ---

    def count(self, where: str | None = None) -> int:
        """How many rows the table holds (that match the SQL filter ``where``)."""
        with self._filtering(where), _reading(self.path):
            return int(self._table.count_rows(where))

    def state(self) -> dict[str, tuple[str, str]]:
        """``{id: (source, sha256)}`` of every row: what is embedded already, and of what."""
        with _reading(self.path):
            table = self._table.search().select(["id", "source", "sha256"]).limit(None).to_arrow()
        ids = table.column("id").to_pylist()
        sources = table.column("source").to_pylist()
        digests = table.column("sha256").to_pylist()
        return {i: (s or "", d or "") for i, s, d in zip(ids, sources, digests, strict=True)}

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Row]:
        """The rows with these ids (in the order given; missing ones left out)."""
        columns = list(COLUMNS) if vectors else _WITHOUT_VECTOR
        found: dict[str, Row] = {}
        for start in range(0, len(ids), _IN_BATCH):
            chunk = list(ids[start : start + _IN_BATCH])
            with _reading(self.path):
                table = (
                    self._table.search()
                    .where(sql_in("id", chunk))
                    .select(columns)
                    .limit(None)
                    .to_arrow()
                )
            for row in rows_from_arrow(table):
                found[row.id] = row
        return [found[i] for i in ids if i in found]

    def batches(self, *, batch_size: int = 4096, where: str | None = None) -> Iterator[Any]:
        """Every row as Arrow record batches (for an export: never the whole table in memory)."""
        query = self._table.search().select(list(COLUMNS)).limit(None)
        if where:
            query = query.where(where)
        with self._filtering(where), _reading(self.path):
            reader = query.to_batches(batch_size)
            yield from reader

    @property
    def arrow_schema(self) -> Any:
        """The table's Arrow schema, with the settings in its metadata."""
        return self._schema

    # --- searching ---

    def search(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: str | None = None,
        vectors: bool = False,
    ) -> list[Hit]:
        """The ``k`` rows nearest to ``vector`` by cosine similarity, best first.

        ``where`` is a LanceDB SQL filter over the columns (``kind = 'image'``,
        ``source LIKE '/photos/%'``), applied before the search.
        """
        if len(vector) != self.info.dimension:
            raise InputError(
                f"the query vector has {len(vector)} numbers; the index holds "
                f"{self.info.dimension}-dimensional vectors of {self.info.model}",
                part=str(self.path),
            )
        columns = list(COLUMNS) if vectors else _WITHOUT_VECTOR
        # The first search of a table object is LanceDB's (a one-shot `search` command reads
        # the column once either way); from the second on, the vectors are held in memory.
        self._searches += 1
        if self._searches > 1 and not self.has_ann():
            held = self._held_vectors()
            if held is not None:
                return self._search_held(held, vector, k, where, columns)
        query = (
            self._table.search(list(vector), vector_column_name="vector")
            .distance_type("cosine")
            .limit(k)
            .select(columns)
        )
        if where:
            query = query.where(where, prefilter=True)
        if self.has_ann():
            query = query.nprobes(ANN_NPROBES).refine_factor(ANN_REFINE)
        with self._filtering(where), _reading(self.path):
            result = query.to_arrow()
        distances = result.column("_distance").to_pylist()
        rows = rows_from_arrow(result.drop_columns(["_distance"]))
        return [Hit(1.0 - float(d), row) for d, row in zip(distances, rows, strict=True)]

    def _held_vectors(self) -> _HeldVectors | None:
        """The table's row ids and unit vectors in memory, read again after any commit;
        ``None`` for a table too large to hold (LanceDB searches it)."""
        with _reading(self.path):
            version = self._table.version
            if self._held is not None and self._held.version == version:
                return self._held
            self._held = None
            if self._table.count_rows() > MEMORY_SEARCH_ROWS:
                return None
            data = self._table.search().select(["vector"]).with_row_id(True).limit(None).to_arrow()
        self._held = _HeldVectors.of(data, self.info.dimension, version)
        return self._held

    def _search_held(
        self,
        held: _HeldVectors,
        vector: Sequence[float],
        k: int,
        where: str | None,
        columns: list[str],
    ) -> list[Hit]:
        import numpy as np

        candidates = None
        if where:
            with self._filtering(where), _reading(self.path):
                matched = (
                    self._table.search()
                    .where(where)
                    .select(["id"])
                    .with_row_id(True)
                    .limit(None)
                    .to_arrow()
                )
            candidates = np.flatnonzero(np.isin(held.row_ids, matched.column("_rowid").to_numpy()))
        best = held.nearest(np.asarray(vector, dtype=np.float32), k, candidates)
        if not best:
            return []
        with _reading(self.path):
            data = (
                self._table.take_row_ids([int(held.row_ids[i]) for i, _ in best])
                .select(columns)
                .with_row_id()
                .to_arrow()
            )
        rows = dict(
            zip(
                data.column("_rowid").to_pylist(),
                rows_from_arrow(data.drop_columns(["_rowid"])),
                strict=True,
            )
        )
        return [Hit(score, rows[int(held.row_ids[i])]) for i, score in best]

    @contextlib.contextmanager
    def _filtering(self, where: str | None) -> Iterator[None]:
        """A filter LanceDB cannot parse or plan, as an input error that quotes it."""
        try:
            yield
        except ValueError as exc:
            if not where:
                raise
            reason = " ".join(str(exc).split())
            raise InputError(
                f"the filter {where!r} is not a valid LanceDB SQL filter over the columns "
                f"{', '.join(_WITHOUT_VECTOR)} ({reason})",
                part=str(self.path),
            ) from exc

    # --- writing (hold the folder's WriteLock) ---

    def add(self, rows: Sequence[Row]) -> None:
        """Append rows (one commit)."""
        if not rows:
            return
        data = rows_to_arrow(self._pa, rows, self._schema, self.info.dimension)
        with _writing(self.path):
            self._table.add(data)

    def delete(self, where: str) -> None:
        """Delete the rows that match an SQL filter (one commit)."""
        with _writing(self.path):
            self._table.delete(where)

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete the rows with these ids."""
        for start in range(0, len(ids), _IN_BATCH):
            self.delete(sql_in("id", list(ids[start : start + _IN_BATCH])))

    def delete_stale(self, current: Sequence[tuple[str, str]]) -> None:
        """Delete the rows of each ``(source, sha256)`` source whose digest is another: what a
        changed file's new rows replace."""
        for start in range(0, len(current), 100):
            clauses = [
                f"(source = {sql_string(source)} AND sha256 != {sql_string(sha)})"
                for source, sha in current[start : start + 100]
            ]
            self.delete(" OR ".join(clauses))

    def upsert(self, rows: Sequence[Row]) -> None:
        """Write rows, replacing those with the same ids, in one commit (readers never see
        the replaced rows missing, and a crash keeps either the old rows or the new)."""
        if not rows:
            return
        data = rows_to_arrow(self._pa, rows, self._schema, self.info.dimension)
        with _writing(self.path):
            (
                self._table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )

    def compact(self) -> None:
        """Merge the fragments that appends made, drop deleted rows and old versions, and bring
        the ANN index (if any) up to date with the rows added since it was built."""
        with _writing(self.path), warnings.catch_warnings():
            # Old versions go at once, to keep the disk to one copy of the data; readers that
            # opened an old version reopen (IndexTable.open(consistent=True) follows commits).
            warnings.filterwarnings("ignore", message=r".*cleanup_older_than", category=UserWarning)
            self._table.optimize(cleanup_older_than=timedelta(0))

    # --- the ANN index ---

    def has_ann(self) -> bool:
        """Whether the vectors have an approximate nearest-neighbour index."""
        if self._ann is None:
            with _reading(self.path):
                self._ann = any(
                    list(index.columns) == ["vector"] for index in self._table.list_indices()
                )
        return self._ann

    def build_ann(self) -> int:
        """Build (or rebuild) the ANN index over every row; returns its IVF partitions.

        Needs :data:`ANN_MIN_ROWS` rows to train on: fewer are searched exactly, fast.
        """
        rows = self.count()
        if rows < ANN_MIN_ROWS:
            raise InputError(
                f"holds {rows:,} rows; an ANN index needs {ANN_MIN_ROWS:,} to train on, and "
                "exact search is fast below that",
                part=str(self.path),
            )
        partitions = ann_partitions(rows)
        from lancedb import index as kinds

        # PQ codes where this LanceDB predates RaBitQ (it has no IvfRq): slower to build.
        rabitq = getattr(kinds, "IvfRq", None)
        config = (
            rabitq(distance_type="cosine", num_partitions=partitions)
            if rabitq is not None
            else kinds.IvfPq(
                distance_type="cosine",
                num_partitions=partitions,
                num_sub_vectors=max(1, self.info.dimension // 8),
            )
        )
        with _writing(self.path):
            self._table.create_index("vector", config=config, replace=True)
        self._ann = True
        self.ann_kind = "IVF_RQ" if rabitq is not None else "IVF_PQ"
        return partitions


def ann_partitions(rows: int) -> int:
    """IVF partitions for ``rows`` rows: about :data:`ANN_ROWS_PER_PARTITION` rows each."""
    return max(ANN_MIN_PARTITIONS, min(ANN_MAX_PARTITIONS, rows // ANN_ROWS_PER_PARTITION))


@dataclass(frozen=True)
class _HeldVectors:
    """The vectors of one version of a table, as unit rows of a float32 matrix."""

    version: int
    row_ids: Any  # numpy uint64, one per row
    unit: Any  # numpy float32 (rows, dimension), each row of norm 1 (or 0)

    @classmethod
    def of(cls, data: Any, dimension: int, version: int) -> _HeldVectors:
        import numpy as np

        flat = data.column("vector").combine_chunks().flatten().to_numpy()
        matrix = np.asarray(flat, dtype=np.float32).reshape(-1, dimension)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        return cls(version, data.column("_rowid").to_numpy(), unit)

    def nearest(self, query: Any, k: int, candidates: Any = None) -> list[tuple[int, float]]:
        """``(position, cosine)`` of the ``k`` rows nearest to ``query``, best first, among
        ``candidates`` (positions) when given."""
        import numpy as np

        norm = float(np.linalg.norm(query))
        if norm == 0 or len(self.row_ids) == 0:
            return []
        matrix = self.unit if candidates is None else self.unit[candidates]
        scores = matrix @ (query / norm)
        count = min(k, len(scores))
        if count == 0:
            return []
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        positions = top if candidates is None else candidates[top]
        return [(int(p), float(scores[t])) for p, t in zip(positions, top, strict=True)]
