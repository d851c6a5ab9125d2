"""The parts of an embed call, and checking any one of them before anything is sent."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence

from ..wire.errors import InputError
from .blocks import ContentBlock, block_part
from .fused import Fused
from .image import Image, MultiImage, is_pil
from .prepared import Prepared, prepare_text
from .video import Video

Part = str | Image | Video | MultiImage | Fused | ContentBlock
"""A part of an embed call: a ``str`` is text, a mapping a multimodal content block (see
:mod:`tongyi_vision.media.blocks`); each part gets one vector (a :class:`Fused` part one
for all its members)."""


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
        return f"m{part.res_level}:" + "|".join(map(_identity, part.images))
    if isinstance(part, Fused):
        return "f:" + "|".join(map(_identity, part.parts))
    if isinstance(part, Mapping):
        dumped = json.dumps(part, sort_keys=True, default=repr).encode("utf-8", "surrogatepass")
        return "b:" + hashlib.sha256(dumped).hexdigest()
    if isinstance(part, (Image, Video)):
        source = part.source
        if isinstance(source, bytes):
            named = hashlib.sha256(source).hexdigest()
        elif isinstance(source, (str, os.PathLike)):
            named = os.fspath(source)
        else:
            named = f"object {id(source)}"
        if isinstance(part, Video):
            named += repr(
                (part.strategy, part.start, part.end, part.frames, part.fps, part.max_video_frames)
            )
        elif part.res_level is not None:
            named += f"@res{part.res_level}"
        return f"{type(part).__name__}:{named}"
    return f"{type(part).__name__}:{id(part)}"


def resolve_part(part: object) -> object:
    """A content block as the text, image or video it describes; any other part as it is."""
    return block_part(part) if isinstance(part, Mapping) else part


def prepare_part(part: object, *, defer_checks: bool = False) -> Prepared:
    """Check one part of a call; raises an :class:`InputError` naming what is wrong (with
    ``defer_checks``, the costly checks are the returned part's ``check``)."""
    part = resolve_part(part)
    if isinstance(part, str):
        return prepare_text(part)
    if isinstance(part, (Image, Video, MultiImage, Fused)):
        return part.prepare(defer_checks=defer_checks)
    if is_pil(part):
        return Image(part).prepare(defer_checks=defer_checks)  # type: ignore[arg-type]
    raise InputError(
        f"a part must be a str (text), Image, Video, MultiImage, Fused or a content block "
        f"(a dict with a 'type'), not {type(part).__name__}; wrap bytes or paths in "
        "Image(...) or Video(...)"
    )
