"""The ``tongyi-vision`` command: ``demo``, ``embed``, ``search`` and ``serve``.

- :mod:`.app`: the argument parser, the dispatch, and exit codes for each kind of failure;
- :mod:`.common`: what every command shares (the client from its options, usage lines);
- :mod:`.items`: what ``embed`` embeds: text chunks, images and clips under the given paths;
- :mod:`.index`: the index file: its format, reading, appending and searching it;
- :mod:`.embed`, :mod:`.search`, :mod:`.demo`: the commands.
"""

from .app import build_parser, main

__all__ = ["build_parser", "main"]
