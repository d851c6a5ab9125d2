"""What goes wrong with an index; each error names the index and says what to do.

::

    TongyiVisionError
     ├── InputError
     │    ├── NotAnIndexError    the path holds no tongyi-vision index (or an old JSONL one)
     │    └── IndexBusyError     another run is writing the index
     └── IndexWriteError        the index cannot be written (a full disk, no permission)
"""

from __future__ import annotations

from ..wire.errors import InputError, TongyiVisionError


class NotAnIndexError(InputError):
    """The path is no tongyi-vision index: missing, another kind of file or folder, a table
    made by something else, or a JSONL index of an older version (to import)."""


class IndexBusyError(InputError):
    """Another ``tongyi-vision embed`` (or another writer) holds the index's lock."""


class IndexWriteError(TongyiVisionError):
    """The index could not be written; what it held before is kept."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"{path}: cannot be written ({reason}); what it holds is kept: free some space "
            "(or fix the cause) and run the same command again"
        )
