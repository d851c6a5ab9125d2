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

# Formats that are images but that the service does not take: the client re-encodes them
# (HEIF and AVIF when Pillow has a plugin for them).
CONVERTIBLE_IMAGE_MIME_TYPES = {
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "avif": "image/avif",
}
# ISO media files (MP4's container) whose brand says "still image", not video.
_IMAGE_BRANDS = {
    b"heic": "heif",
    b"heix": "heif",
    b"heim": "heif",
    b"heis": "heif",
    b"hevc": "heif",
    b"hevx": "heif",
    b"mif1": "heif",
    b"msf1": "heif",
    b"avif": "avif",
    b"avis": "avif",
}
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
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _IMAGE_BRANDS.get(head[8:12])
    return None


def sniff_video_format(head: bytes) -> str | None:
    """Return a key of :data:`VIDEO_MIME_TYPES`, or ``None``, from the first bytes of a file."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None  # a HEIF or AVIF still image in MP4's container
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


def structure_problem(fmt: str, head: bytes, tail: bytes, size: int) -> str | None:
    """What is wrong with the bytes' structure of a JPEG, PNG or BMP, or ``None``: the check
    made when Pillow is not installed to decode the image (``tail``: its last few KB)."""
    if fmt == "png" and not tail.endswith(b"IEND\xaeB`\x82"):
        return "ends before its IEND chunk (the file is cut short)"
    if fmt == "jpeg" and b"\xff\xd9" not in tail:
        return "has no end-of-image marker (the file is cut short)"
    if fmt == "bmp" and len(head) >= 14:
        declared = int.from_bytes(head[2:6], "little")
        offset = int.from_bytes(head[10:14], "little")
        if offset > size or (declared > size and declared - size > 2):
            return f"declares {declared:,} bytes but holds {size:,} (the file is cut short)"
    return None
