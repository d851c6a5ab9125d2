"""The parts of an embed call, and checking any one of them before anything is sent."""

from __future__ import annotations

from ..wire.errors import InputError
from .image import Image, MultiImage, is_pil
from .prepared import Prepared, prepare_text
from .video import Video

Part = str | Image | Video | MultiImage
"""A part of an embed call: a ``str`` is text; each part gets one vector."""


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
