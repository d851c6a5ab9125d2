"""Fused parts: a text, images and a video in ONE content object, embedded into ONE vector.

The dated snapshots (``tongyi-embedding-vision-flash-2026-03-06`` and the plus one) fuse the
media of one content object; the undated names do not, and the client refuses a
:class:`Fused` part for them before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..wire.errors import EmptyInputError, InputError
from ..wire.limits import MAX_IMAGES_PER_GROUP
from .image import Image, MultiImage, common_res_level
from .prepared import Content, Prepared, finish, prepare_text, with_options
from .video import Video

FusedMember = str | Image | MultiImage | Video
"""What a fused part holds: a text, images (one by one or as a :class:`MultiImage`) and a
video."""


class Fused:
    """A text, up to eight images and at most one video embedded together into ONE vector.

    The members go in one content object (``{"text": ..., "image": ...}``; several
    images as its ``multi_images``), which the dated snapshots embed into one fused
    vector. One text at most (a content object holds one: join several yourself);
    the video must be one the service samples (a URL). Other models, and the openai
    dialect, refuse it before anything is sent.

    >>> Fused(["a red bicycle", Image("bike.jpg")])
    >>> Fused(["the keynote", Video("https://example.com/keynote.mp4", fps=0.5)])
    """

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[FusedMember]) -> None:
        if isinstance(parts, (str, bytes, Image, MultiImage, Video, Fused)):
            raise InputError("Fused takes a list of parts: Fused([text, Image(...), ...])")
        self.parts: list[FusedMember] = list(parts)
        for position, member in enumerate(self.parts):
            if not isinstance(member, (str, Image, MultiImage, Video)):
                raise InputError(
                    f"member {position} of Fused is a {type(member).__name__}; a fused part "
                    "holds texts (str), Image, MultiImage and Video"
                )

    def __repr__(self) -> str:
        return f"Fused({self.parts!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fused) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(("fused", tuple(self.parts)))

    def _description(self) -> str:
        kinds = [type(m).__name__ if not isinstance(m, str) else "text" for m in self.parts]
        return f"Fused(<{', '.join(kinds)}>)"

    def prepare(self, *, defer_checks: bool = False) -> Prepared:
        """Check the members and return how to load the one content object they make."""
        return finish(self._prepare(), defer_checks)

    def _prepare(self) -> Prepared:
        description = self._description()
        texts = [m for m in self.parts if isinstance(m, str)]
        videos = [m for m in self.parts if isinstance(m, Video)]
        images: list[Image] = []
        for member in self.parts:
            if isinstance(member, Image):
                images.append(member)
            elif isinstance(member, MultiImage):
                images.extend(member.images)
        if not self.parts:
            raise EmptyInputError("Fused has no parts", part=description)
        if len(texts) > 1:
            raise InputError(
                f"has {len(texts)} texts; a content object holds one: join them into one text",
                part=description,
            )
        if len(videos) > 1:
            raise InputError(
                f"has {len(videos)} videos; a fused part holds at most one", part=description
            )
        if len(images) > MAX_IMAGES_PER_GROUP:
            raise InputError(
                f"has {len(images)} images; at most {MAX_IMAGES_PER_GROUP} go in one content",
                part=description,
            )
        if len(self.parts) < 2:
            raise InputError(
                "has one member; a fused part is for several media together: pass the member "
                "as a part of its own",
                part=description,
            )
        if videos and videos[0].resolved_strategy() == "frames":
            raise InputError(
                "its video would be sampled here into frames (a local file); a fused part "
                "takes a video the service samples: give it by URL",
                part=description,
            )
        levels = [i.res_level for i in images]
        levels += [m.res_level for m in self.parts if isinstance(m, MultiImage)]
        res_level = common_res_level(levels, self) if images else None
        ordered: list[str | Image | Video] = [*texts, *images, *videos]
        members = [self._member(m, description) for m in ordered]
        text = members[: len(texts)]
        pictures = members[len(texts) : len(texts) + len(images)]
        video = members[len(texts) + len(images) :]

        def load() -> Content:
            content: dict[str, Any] = {}
            if text:
                content["text"] = text[0].load()["text"]
            if len(pictures) == 1:
                content["image"] = pictures[0].load()["image"]
            elif pictures:
                content["multi_images"] = [p.load()["image"] for p in pictures]
            if video:
                content["video"] = video[0].load()["video"]
            return content

        def identity() -> str:
            named = [m.identity() for m in members]
            remote = any(n.startswith("url:") for n in named)
            # each member's own identity, in the order the content holds them
            return ("url:" if remote else "") + "f:" + "|".join(named)

        def check() -> None:
            for member in members:
                member.check()

        uses = frozenset().union(*(m.uses for m in members))
        options = dict(o for m in members for o in m.options)
        options.pop("res_level", None)
        part = Prepared(
            "fused",
            "f:" + "|".join(m.key for m in members),
            description,
            sum(m.size_hint for m in members),
            len(images),
            sum(m.text_tokens for m in members),
            load,
            identity,
            check,
            uses=uses,
            videos=len(video),
        )
        return with_options(part, res_level=res_level, **options)

    @staticmethod
    def _member(member: str | Image | Video, description: str) -> Prepared:
        try:
            if isinstance(member, str):
                return prepare_text(member)
            return member.prepare(defer_checks=True)
        except InputError as exc:
            exc.part = f"{exc.part} in {description}" if exc.part else description
            exc.args = (exc._format(),)
            raise
