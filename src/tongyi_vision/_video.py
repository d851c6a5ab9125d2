"""Video parts. The service takes videos by URL (and some gateways as a data URI)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import Literal

from ._exceptions import InputError, MediaTooLargeError, UnsupportedMediaError
from ._limits import MAX_VIDEO_BYTES, VIDEO_MIME_TYPES, sniff_video_format
from ._parts import Prepared, _is_url, _path_from, _read_head, describe

VideoStrategy = Literal["url", "data_uri", "frames"]


class Video:
    """A video: an http(s) URL, passed to the service as it is.

    The native API takes videos only by URL. Local video files arrive with
    frame sampling in a later release; until then they are refused with an
    error that says so.
    """

    __slots__ = ("source",)

    def __init__(self, source: str | os.PathLike[str]) -> None:
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(f"Video takes a URL or a path, not {type(source).__name__}")
        self.source = source

    def __repr__(self) -> str:
        return f"Video({describe(os.fspath(self.source))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Video) and other.source == self.source

    def __hash__(self) -> int:
        return hash(("video", self.source))

    def prepare(self) -> Prepared:
        source = os.fspath(self.source)
        description = describe(source)
        if _is_url(source):
            return Prepared(
                "video",
                "v:" + source,
                description,
                len(source) + 16,
                0,
                0,
                lambda: {"video": source},
            )
        if source.startswith("data:video/"):
            return self._prepare_data_uri(source, description)
        _read_head(_path_from(source), description)
        raise UnsupportedMediaError(
            "local video files are not supported yet: the service takes videos by URL; "
            "upload the file and pass its http(s) URL",
            part=description,
        )

    @staticmethod
    def _prepare_data_uri(uri: str, description: str) -> Prepared:
        header, _, payload = uri.partition(",")
        if ";base64" not in header:
            raise UnsupportedMediaError("is not a base64 video data URI", part=description)
        size = len(payload) * 3 // 4
        if size > MAX_VIDEO_BYTES:
            raise MediaTooLargeError(
                f"is about {size:,} bytes, over the {MAX_VIDEO_BYTES:,}-byte (10 MB) video limit",
                part=description,
            )
        try:
            head = base64.b64decode(payload[:88], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UnsupportedMediaError("has invalid base64", part=description) from exc
        if sniff_video_format(head) is None:
            raise UnsupportedMediaError(
                f"is not a video container the service takes ({', '.join(VIDEO_MIME_TYPES)})",
                part=description,
            )
        key = "v:" + hashlib.sha256(uri.encode()).hexdigest()
        return Prepared("video", key, description, len(uri) + 16, 0, 0, lambda: {"video": uri})
