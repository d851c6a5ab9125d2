"""Checking and embedding the contents of one request, as the real service would.

Limits come from :mod:`tongyi_vision.wire.limits`, shared with the client. Token
counts follow the documented formulas (docs/emulator.md, "Usage"):

- text: :func:`~tongyi_vision.wire.limits.estimate_text_tokens`;
- image: :func:`~tongyi_vision.wire.limits.image_tokens_for_pixels` of its size; an
  http(s) image the emulator cannot read counts as 512 x 512 pixels; on a dated
  snapshot, the fixed count of its ``res_level`` instead;
- video: one 448 x 448 frame per second scaled by the ratio ``fps`` (at least one
  frame, at most ``max_video_frames`` on a snapshot); a video's length is taken as
  10 seconds, since the emulator does not decode video.

A content of a snapshot may hold several modalities (fusion): its members are checked and
billed as parts of their own, and give one vector together.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..wire.formats import (
    IMAGE_MIME_TYPES,
    VIDEO_MIME_TYPES,
    sniff_image_format,
    sniff_video_format,
)
from ..wire.limits import (
    MAX_DECODE_PIXELS,
    MAX_IMAGE_BYTES,
    MAX_IMAGES_PER_GROUP,
    MAX_IMAGES_PER_REQUEST,
    MAX_PARTS_PER_REQUEST,
    MAX_TEXT_TOKENS,
    MAX_VIDEO_BYTES,
    ModelSpec,
    estimate_text_tokens,
    image_tokens_for_pixels,
)
from ..wire.models import NativeContent
from . import _vectors
from ._errors import ApiFault, bad_request
from ._models import Options, fusing_model, image_tokens, video_frames

URL_IMAGE_SIZE = (512, 512)
VIDEO_SECONDS = 10.0
VIDEO_FRAME_SIZE = (448, 448)


# The keys of a content, in the order a fused content's members are embedded and summed.
CONTENT_KEYS = ("text", "image", "multi_images", "video")


def members(content: NativeContent) -> list[NativeContent]:
    """The single-key contents ``content`` is made of: itself, or, for a content holding
    several modalities (fusion), one per key."""
    keys = [key for key in CONTENT_KEYS if getattr(content, key) is not None]
    if len(keys) < 2:
        return [content]
    return [NativeContent.model_validate({key: getattr(content, key)}) for key in keys]


def check_fusion(contents: Sequence[NativeContent], where: str, spec: ModelSpec) -> None:
    """Refuse (400) a content holding several modalities unless ``spec`` fuses them."""
    if spec.fuses:
        return
    for index, content in enumerate(contents):
        parts = members(content)
        if len(parts) > 1:
            param = f"{where}[{index}]"
            raise bad_request(
                f"{param} holds {' and '.join(part.kind for part in parts)}: {spec.name} "
                "does not fuse modalities; send each as a content of its own, or use "
                f"{fusing_model(spec)} for one fused vector",
                param=param,
            )


@dataclass(frozen=True)
class Embedded:
    """One content's vector and what it is billed."""

    kind: str
    vector: _vectors.Vector
    text_tokens: int = 0
    image_tokens: int = 0
    video_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0


def check_raw_counts(contents: object, where: str) -> None:
    """The part and group counts of a request's contents as parsed JSON, before any model is
    built from them: validating millions of tiny parts into models took seconds and over a
    gigabyte only to be refused for their number. Anything that is not the expected shape is
    left to validation to describe. Raises :class:`ApiFault`."""
    if not isinstance(contents, list):
        return
    if len(contents) > MAX_PARTS_PER_REQUEST:
        raise _too_many_parts(len(contents), where)
    for index, content in enumerate(contents):
        group = content.get("multi_images") if isinstance(content, dict) else None
        if isinstance(group, list) and len(group) > MAX_IMAGES_PER_GROUP:
            raise _too_big_a_group(len(group), f"{where}[{index}]")


def check_counts(contents: Sequence[NativeContent], where: str) -> None:
    """The cheap, whole-request checks: parts, images, texts. Raises :class:`ApiFault`."""
    if not contents:
        raise bad_request("input is empty: send at least one content", param=where, empty=True)
    if len(contents) > MAX_PARTS_PER_REQUEST:
        raise _too_many_parts(len(contents), where)
    images = 0
    for index, content in enumerate(contents):
        param = f"{where}[{index}]"
        for part in members(content):
            images += _check_member(part, param)
    if images > MAX_IMAGES_PER_REQUEST:
        raise bad_request(
            f"{images} images in one request (multi_images members count); "
            f"at most {MAX_IMAGES_PER_REQUEST} are allowed",
            param=where,
        )


def _check_member(content: NativeContent, param: str) -> int:
    """Check one single-key content; the number of images it holds."""
    if content.text is not None:
        if not content.text.strip():
            raise bad_request("text is empty", param=param, empty=True)
        tokens = estimate_text_tokens(content.text)
        if tokens > MAX_TEXT_TOKENS:
            raise bad_request(
                f"text is {tokens} tokens, over the limit of {MAX_TEXT_TOKENS}", param=param
            )
        return 0
    if content.image is not None:
        return 1
    if content.multi_images is not None:
        group = len(content.multi_images)
        if group == 0:
            raise bad_request("multi_images is empty", param=param, empty=True)
        if group > MAX_IMAGES_PER_GROUP:
            raise _too_big_a_group(group, param)
        return group
    return 0


def _too_many_parts(count: int, where: str) -> ApiFault:
    return bad_request(
        f"{count} contents in one request; at most {MAX_PARTS_PER_REQUEST} are allowed",
        param=where,
    )


def _too_big_a_group(count: int, param: str) -> ApiFault:
    return bad_request(
        f"multi_images has {count} images; at most {MAX_IMAGES_PER_GROUP} are allowed",
        param=param,
    )


def embed_contents(
    contents: Sequence[NativeContent], options: Options, where: str
) -> list[Embedded]:
    """Check every content fully and embed it; the first problem raises :class:`ApiFault`.
    A content holding several modalities gives one fused vector (see :func:`check_fusion`
    for the models that refuse it)."""
    check_counts(contents, where)
    out = []
    for index, content in enumerate(contents):
        param = f"{where}[{index}]"
        parts = members(content)
        if len(parts) > 1:
            embedded = _fuse([_embed(m, options, f"{param}.{m.kind}") for m in parts], options)
        else:
            embedded = _embed(content, options, param)
        if options.instruct is not None:
            vector = _vectors.instructed_vector(
                embedded.vector, options.instruct, options.dimension
            )
            embedded = replace(embedded, vector=vector)
        out.append(embedded)
    return out


def _embed(content: NativeContent, options: Options, param: str) -> Embedded:
    if content.text is not None:
        text = content.text
        vector = _vectors.text_vector(text, options.dimension)
        return Embedded("text", vector, text_tokens=estimate_text_tokens(text))
    if content.image is not None:
        vector, tokens = _image(content.image, options, param)
        return Embedded("image", vector, image_tokens=tokens, images=1)
    if content.video is not None:
        return _video(content.video, options, param)
    group = content.multi_images or []
    images = [_image(v, options, f"{param}[{i}]") for i, v in enumerate(group)]
    vector = _vectors.mean_vector([m[0] for m in images], options.dimension)
    tokens = sum(m[1] for m in images)
    return Embedded("multi_images", vector, image_tokens=tokens, images=len(group))


def _fuse(parts: Sequence[Embedded], options: Options) -> Embedded:
    """One vector for a fused content, billed as its members are."""
    return Embedded(
        "fused",
        _vectors.fused_vector([part.vector for part in parts], options.dimension),
        text_tokens=sum(part.text_tokens for part in parts),
        image_tokens=sum(part.image_tokens for part in parts),
        video_tokens=sum(part.video_tokens for part in parts),
        images=sum(part.images for part in parts),
        video_seconds=sum(part.video_seconds for part in parts),
    )


def _image(value: str, options: Options, param: str) -> tuple[_vectors.Vector, int]:
    if value.startswith("data:"):
        data = _data_uri(value, "image", MAX_IMAGE_BYTES, param)
    elif value.startswith(("http://", "https://")):
        path = _local_path(value, options.media_roots, param)
        if path is None:
            tokens = image_tokens(options, image_tokens_for_pixels(*URL_IMAGE_SIZE))
            return _vectors.url_vector("image", value, options.dimension), tokens
        data = _read(path, value, "image", MAX_IMAGE_BYTES, param)
    else:
        raise bad_request(
            "image must be an http(s) URL or a data:image/...;base64 URI "
            "(the service cannot read local paths)",
            param=param,
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise bad_request(
            f"image is {len(data):,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit", param=param
        )
    fmt = sniff_image_format(data[:16])
    if fmt not in IMAGE_MIME_TYPES:
        raise bad_request(
            f"image format {fmt.upper() if fmt else 'unknown'} is not supported; "
            "send JPEG, PNG or BMP",
            param=param,
        )
    try:
        width, height, pixels = _vectors.thumbnail(data, MAX_DECODE_PIXELS)
    except Exception as exc:
        # Pillow raises many types for broken files; all mean the same to the caller.
        raise bad_request(f"image cannot be decoded ({type(exc).__name__})", param=param) from exc
    tokens = image_tokens(options, image_tokens_for_pixels(width, height))
    return _vectors.pixel_vector(pixels, options.dimension), tokens


def _video(value: str, options: Options, param: str) -> Embedded:
    tokens = video_frames(options, VIDEO_SECONDS) * image_tokens_for_pixels(*VIDEO_FRAME_SIZE)
    if value.startswith("data:"):
        if options.dialect != "openai":
            raise bad_request(
                "video must be an http(s) URL; this API does not take base64 video", param=param
            )
        data = _data_uri(value, "video", MAX_VIDEO_BYTES, param)
    elif value.startswith(("http://", "https://")):
        path = _local_path(value, options.media_roots, param)
        if path is None:
            vector = _vectors.url_vector("video", value, options.dimension)
            return Embedded("video", vector, video_tokens=tokens, video_seconds=VIDEO_SECONDS)
        data = _read(path, value, "video", MAX_VIDEO_BYTES, param)
    else:
        raise bad_request("video must be an http(s) URL", param=param)
    if len(data) > MAX_VIDEO_BYTES:
        raise bad_request(
            f"video is {len(data):,} bytes, over the {MAX_VIDEO_BYTES:,}-byte limit", param=param
        )
    if sniff_video_format(data[:64]) is None:
        raise bad_request(
            f"video format is not supported; send one of {', '.join(VIDEO_MIME_TYPES)}",
            param=param,
        )
    vector = _vectors.video_bytes_vector(data, options.dimension)
    return Embedded("video", vector, video_tokens=tokens, video_seconds=VIDEO_SECONDS)


def _data_uri(value: str, medium: str, limit: int, param: str) -> bytes:
    header, sep, payload = value.partition(",")
    if not sep or not header.startswith(f"data:{medium}/") or not header.endswith(";base64"):
        raise bad_request(
            f"a {medium} data URI must look like data:{medium}/...;base64,<data>", param=param
        )
    # Refuse an oversized payload before spending time decoding it.
    if len(payload) // 4 * 3 > limit + 3:
        raise bad_request(
            f"{medium} is over the {limit:,}-byte limit (about {len(payload) // 4 * 3:,} bytes)",
            param=param,
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"{medium} data URI holds invalid base64", param=param) from exc


def _local_path(url: str, roots: Sequence[tuple[str, Path]], param: str) -> Path | None:
    for prefix, directory in roots:
        if url.startswith(prefix):
            try:
                relative = urllib.parse.unquote(urllib.parse.urlsplit(url[len(prefix) :]).path)
            except ValueError as exc:  # e.g. an unclosed "[" where a host would be
                raise _cannot_download(url, param, "not a valid URL") from exc
            # A NUL (%00) names no file; the path functions would raise ValueError for it.
            if "\x00" in relative:
                raise _cannot_download(url, param, "not a valid file name")
            try:
                base = directory.resolve()
                path = (base / relative.lstrip("/")).resolve()
            except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a name too long
                raise _cannot_download(url, param, "not a valid file name") from exc
            if not path.is_relative_to(base):
                raise _cannot_download(url, param, "outside the mapped folder")
            return path
    return None


def _read(path: Path, url: str, medium: str, limit: int, param: str) -> bytes:
    """The bytes of a mapped file: at most ``limit`` + 1 of them, so the caller's size check
    still sees a file that grew. Looked at with stat before opening, since opening a FIFO
    waits for a writer forever and a huge file would be read whole before its size was known.
    """
    try:
        info = path.stat()
    except (OSError, ValueError) as exc:
        raise _cannot_download(url, param, "not found") from exc
    if not stat.S_ISREG(info.st_mode):
        raise _cannot_download(url, param, "not a regular file")
    if info.st_size > limit:
        raise bad_request(
            f"{medium} is {info.st_size:,} bytes, over the {limit:,}-byte limit", param=param
        )
    # Non-blocking and not following a final link: a file swapped for a FIFO or a link since
    # the stat cannot hang the open or lead outside the folder. Neither flag exists on Windows,
    # which needs O_BINARY instead (POSIX has no such flag).
    flags = os.O_RDONLY
    for name in ("O_NONBLOCK", "O_NOFOLLOW", "O_BINARY"):
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _cannot_download(url, param, "not found") from exc
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise _cannot_download(url, param, "not a regular file")
        try:
            return file.read(limit + 1)
        except OSError as exc:
            raise _cannot_download(url, param, "unreadable") from exc


def _cannot_download(url: str, param: str, why: str) -> ApiFault:
    return ApiFault(400, f"URL {url} cannot be downloaded ({why})", code="InvalidURL", param=param)
