"""The parts of an embed call, and checking any one of them before anything is sent."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from ..wire.errors import InputError
from .image import Image, MultiImage, is_pil
from .prepared import Prepared, prepare_text
from .video import Video

Part = str | Image | Video | MultiImage
"""A part of an embed call: a ``str`` is text; each part gets one vector."""


def parts_digest(parts: Sequence[object]) -> str:
    """A digest of what a call's parts are (no file is read), so that the partial result of
    one call is not taken for that of other parts of the same length."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_identity(part).encode("utf-8", "backslashreplace") + b"\0")
    return digest.hexdigest()


def _identity(part: object) -> str:
    if isinstance(part, str):
        return "t:" + part
    if isinstance(part, MultiImage):
        return "m:" + "|".join(map(_identity, part.images))
    if isinstance(part, (Image, Video)):
        source = part.source
        if isinstance(source, bytes):
            named = hashlib.sha256(source).hexdigest()
        elif isinstance(source, (str, os.PathLike)):
            named = os.fspath(source)
        else:
            named = f"object {id(source)}"
        if isinstance(part, Video):
            named += repr((part.strategy, part.start, part.end, part.frames))
        return f"{type(part).__name__}:{named}"
    return f"{type(part).__name__}:{id(part)}"


def prepare_part(part: object) -> Prepared:
    """Check one part of a call; raises an :class:`InputError` naming what is wrong."""
    if isinstance(part, str):
        return prepare_text(part)
    if isinstance(part, (Image, Video, MultiImage)):
        return part.prepare()
    if is_pil(part):
        return Image(part).prepare()  # type: ignore[arg-type]
    raise InputError(
        f"a part must be a str (text), Image, Video or MultiImage, not {type(part).__name__}; "
        "wrap bytes or paths in Image(...) or Video(...)"
    )
