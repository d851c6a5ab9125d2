"""The three shapes a Ray Data batch comes in, read and added to the same way.

``map_batches`` hands a function a dict of numpy arrays (``batch_format="numpy"``,
Ray's default), a pandas DataFrame (``"pandas"``) or a pyarrow Table
(``"pyarrow"``). The embedder reads one column of it as Python values and hands
it back with columns added, in the shape it came in. The columns it adds are Arrow
arrays, so that the vectors are ``fixed_size_list<float32>`` in every shape (the
row schema of the index), with nulls for rows without one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..wire.errors import InputError
from ..wire.results import Vector

Batch = Any
"""A dict of numpy arrays, a pandas DataFrame or a pyarrow Table."""


def _pyarrow() -> Any:
    return importlib.import_module("pyarrow")


def batch_kind(batch: Batch) -> str:
    """``"numpy"``, ``"pandas"`` or ``"pyarrow"``; a ``TypeError`` for anything else."""
    if isinstance(batch, Mapping):
        return "numpy"
    module = type(batch).__module__
    if module.startswith("pandas"):
        return "pandas"
    if module.startswith("pyarrow"):
        return "pyarrow"
    raise TypeError(
        "a batch is a dict of numpy arrays, a pandas DataFrame or a pyarrow Table (the "
        f"batch formats of map_batches), not {type(batch).__name__}"
    )


def column_names(batch: Batch) -> list[str]:
    kind = batch_kind(batch)
    if kind == "numpy":
        return list(batch)
    if kind == "pandas":
        return [str(c) for c in batch.columns]
    return list(batch.column_names)


def batch_length(batch: Batch) -> int:
    kind = batch_kind(batch)
    if kind == "numpy":
        return len(next(iter(batch.values()))) if batch else 0
    return len(batch) if kind == "pandas" else int(batch.num_rows)


def column_values(batch: Batch, name: str) -> list[Any]:
    """The values of column ``name`` as Python objects (pictures as numpy arrays); an
    :class:`InputError` naming the columns there are when it is missing."""
    names = column_names(batch)
    if name not in names:
        raise InputError(
            f"the dataset has no column {name!r}; its columns are "
            f"{', '.join(map(repr, names)) or 'none'} (give column=... one of them)"
        )
    kind = batch_kind(batch)
    if kind == "numpy":
        return list(batch[name])
    if kind == "pandas":
        return list(batch[name])
    column = batch.column(name)
    if isinstance(column.type, _pyarrow().ExtensionType):
        # Ray's tensor columns (pictures): numpy arrays, as the numpy format gives them
        values: list[Any] = []
        for chunk in column.chunks:
            values.extend(chunk.to_numpy())
        return values
    return list(column.to_pylist())


def vector_array(vectors: Sequence[Vector | None], dimension: int | None) -> Any:
    """The vectors as an Arrow ``fixed_size_list<float32>[dimension]`` array, null where a
    row has none (``dimension`` from the vectors when it is not known)."""
    import numpy as np

    pa = _pyarrow()
    size = dimension or next((len(v) for v in vectors if v is not None), 0)
    if not size:  # no vector and no known size: nothing to say the width of the list
        return pa.array([None] * len(vectors), type=pa.list_(pa.float32()))
    matrix = np.zeros((len(vectors), size), dtype=np.float32)
    missing = np.zeros(len(vectors), dtype=bool)
    for row, vector in enumerate(vectors):
        if vector is None:
            missing[row] = True
        elif len(vector) != size:
            raise ValueError(f"row {row} has a vector of {len(vector)} numbers, not {size}")
        else:
            matrix[row] = vector
    flat = pa.array(matrix.reshape(-1), type=pa.float32())
    mask = pa.array(missing) if missing.any() else None
    return pa.FixedSizeListArray.from_arrays(flat, size, mask=mask)


def string_array(values: Sequence[str | None]) -> Any:
    return _pyarrow().array(list(values), type=_pyarrow().string())


def with_columns(batch: Batch, columns: Mapping[str, Any]) -> Batch:
    """``batch`` with these Arrow arrays as columns (replacing any of the same name), in
    the shape it came in."""
    kind = batch_kind(batch)
    if kind == "numpy":
        return {**batch, **columns}
    if kind == "pandas":
        pd = importlib.import_module("pandas")  # by name: pandas ships no type hints
        added = {
            name: pd.Series(pd.arrays.ArrowExtensionArray(array), index=batch.index)
            for name, array in columns.items()
        }
        return batch.assign(**added)
    for name, array in columns.items():
        if name in batch.column_names:
            batch = batch.set_column(batch.column_names.index(name), name, array)
        else:
            batch = batch.append_column(name, array)
    return batch
