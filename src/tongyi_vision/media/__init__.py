"""Inputs: what a part is, and how a local file, a URL or bytes become a request's content.

- :mod:`.sources`: local paths, ``file://`` and data URIs, reading a file's first bytes,
  safe descriptions of inputs for error messages, media time fragments;
- :mod:`.prepared`: a part checked and ready to load, and text parts;
- :mod:`.imaging`: Pillow: header checks, the decompression-bomb guard, re-encoding to fit;
- :mod:`.image`: :class:`Image` and :class:`MultiImage`;
- :mod:`.decoding`: PyAV: probing videos and sampling frames;
- :mod:`.video`: :class:`Video` and how each kind of source reaches the service;
- :mod:`.clips`: cutting a local video into clips;
- :mod:`.parts`: the ``Part`` union and checking any part;
- :mod:`.references`: strings that stand for media (``file://``, ``data:``, raw base64);
- :mod:`.catalogue`: the one place that finds media files under paths, folders and globs.

Imports the wire package only. Import public names from ``tongyi_vision`` itself.
"""
