"""The ``tongyi-vision`` command."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tongyi-vision`` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        from .emulator import main as serve_main

        return serve_main(args[1:])
    print("usage: tongyi-vision serve [options]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
