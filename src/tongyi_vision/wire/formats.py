"""Media formats the service takes, told by their first bytes (never by file names).

The client, the loaders and readers, the CLI and the emulator all sniff files
here, so a file is the same kind of thing to each of them.
"""

from __future__ import annotations

HEAD_BYTES = 64
"""How many leading bytes are enough to tell every format below."""

IMAGE_MIME_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp"}
VIDEO_MIME_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mpeg": "video/mpeg",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "flv": "video/x-flv",
    "mkv": "video/x-matroska",
}

# Formats that are images but that the service does not take: the client re-encodes them.
CONVERTIBLE_IMAGE_MIME_TYPES = {"gif": "image/gif", "webp": "image/webp", "tiff": "image/tiff"}
ANY_IMAGE_MIME_TYPES = {**IMAGE_MIME_TYPES, **CONVERTIBLE_IMAGE_MIME_TYPES}


def sniff_image_format(head: bytes) -> str | None:
    """``jpeg``, ``png``, ``bmp``, ``gif``, ``webp``, ``tiff`` or ``None``, from magic bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


def sniff_video_format(head: bytes) -> str | None:
    """Return a key of :data:`VIDEO_MIME_TYPES`, or ``None``, from the first bytes of a file."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "mov" if brand == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "mpeg"
    return None
