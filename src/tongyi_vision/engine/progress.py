"""The one progress bar: a tqdm bar that follows a call's :class:`ProgressEvent` s.

The client's ``show_progress``, the LlamaIndex adapter's ``show_progress`` and
the ``tongyi-vision embed`` command all draw this bar; it moves as each request
finishes, never backwards, and prints skipped items above itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

from ..wire.errors import MissingDependencyError
from ..wire.results import ProgressEvent

ProgressCallback = Callable[[ProgressEvent], None]


class ProgressBar:
    """A tqdm bar over ``total`` items, or nothing when it is turned off.

    ``extra`` names the extra that brings tqdm: without tqdm a bar asked for
    raises :class:`MissingDependencyError`, unless ``extra`` is ``None``, when
    it quietly draws nothing (the command line's choice). ``offset`` is added
    to each event's ``parts_done``, for a bar over several calls.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        desc: str = "embedding",
        unit: str = "part",
        extra: str | None = "progress",
        stream: IO[str] | None = None,
    ) -> None:
        self.offset = 0
        self._bar: Any = None
        if not enabled or total <= 0:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:
            if extra is None:
                return
            raise MissingDependencyError("tqdm", extra, "A progress bar") from exc
        # On a stream that is not a terminal (a log, CI), disable=None draws nothing.
        options: dict[str, Any] = {"file": stream, "disable": None} if stream else {}
        self._bar = tqdm(total=total, desc=desc, unit=unit, **options)

    @property
    def callback(self) -> ProgressCallback | None:
        """A ``progress`` callback for an embed call, or ``None`` when no bar is drawn."""
        return self._on_event if self._bar is not None else None

    def _on_event(self, event: ProgressEvent) -> None:
        self.advance_to(self.offset + event.parts_done)

    def advance_to(self, done: int) -> None:
        """Move the bar to ``done`` items (never backwards, never past the total)."""
        bar = self._bar
        if bar is not None and done > bar.n:
            bar.update(min(done, bar.total) - bar.n)

    def write(self, line: str) -> None:
        """Print a line above the bar (on stderr when no bar is drawn)."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
