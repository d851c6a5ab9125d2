"""The index: a LanceDB table of embedded items, one row schema for the CLI and both frameworks.

``tongyi-vision embed`` writes it, ``tongyi-vision search`` reads it, and
``tongyi_vision.langchain.open_index`` / ``tongyi_vision.llama_index.open_index``
open the same table as a vector store. The index is a folder (a LanceDB
database) holding one table, ``items``: one row per embedded item (a text or a
chunk of one, an image, a video clip), and the model, vector size, dialect and
clip length in the table's schema metadata.

- :mod:`.schema`: the row, the table's settings, and their Arrow form;
- :mod:`.table`: opening, creating, locking, writing and searching the table;
- :mod:`.errors`: what goes wrong with an index, each naming it and saying what to do.

LanceDB and pyarrow are imported when a table is first opened (the ``index``
extra): ``pip install 'tongyi-vision[index]'``.
"""

from .._public import show_as_public
from .errors import IndexBusyError, IndexWriteError, NotAnIndexError
from .schema import (
    DEFAULT_ANN_THRESHOLD,
    TABLE_NAME,
    Hit,
    IndexInfo,
    Row,
)
from .table import IndexTable, WriteLock

__all__ = [
    "DEFAULT_ANN_THRESHOLD",
    "TABLE_NAME",
    "Hit",
    "IndexBusyError",
    "IndexInfo",
    "IndexTable",
    "IndexWriteError",
    "NotAnIndexError",
    "Row",
    "WriteLock",
]

show_as_public(globals())
