"""Walking a folder for media files: one walk for the loaders and readers that take folders."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

from ._exceptions import MediaNotFoundError


def walk_folder(
    folder: Path, pattern: str = "*", recursive: bool = False, *, hidden: bool = False
) -> Iterator[Path | MediaNotFoundError]:
    """The files of ``folder`` whose names match ``pattern``, sorted by name.

    As in a shell, a wildcard does not match a leading dot: hidden files need a
    pattern such as ``".*"``. Sub-folders are entered with ``recursive``, except
    hidden ones (.git, .cache...) and linked ones, which could loop; ``hidden=True``
    takes hidden files and folders like any other. A broken link is yielded too,
    for the caller to report. A folder that cannot be listed is yielded as a
    :class:`MediaNotFoundError`, not raised, so one bad folder does not end a load.
    """
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        yield MediaNotFoundError(
            f"folder cannot be listed ({exc.strerror or exc})", part=repr(str(folder))
        )
        return
    for entry in entries:
        shown = hidden or not entry.name.startswith(".")
        if entry.is_dir():
            if recursive and shown and not entry.is_symlink():
                yield from walk_folder(Path(entry.path), pattern, recursive, hidden=hidden)
            continue
        wanted = (shown or pattern.startswith(".")) and fnmatch.fnmatch(entry.name, pattern)
        if wanted and (entry.is_file() or entry.is_symlink()):
            yield Path(entry.path)
