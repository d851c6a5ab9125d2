"""The media-file catalogue's rules, tested once: every loader, reader and the CLI use them.

Order, hidden files, patterns, linked folders, links that loop or point nowhere, folders
that cannot be listed, globs, decompression bombs, broken headers, file names that are not
UTF-8, digests, and how skipped files are reported.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests._core_fakes import png_bytes
from tongyi_vision import (
    CorruptMediaError,
    EmptyInputError,
    MediaFile,
    MediaNotFoundError,
    SkippedFile,
    UnsupportedMediaError,
    scan,
)
from tongyi_vision.media.catalogue import Skips, check_on_error, inspect_bytes
from tongyi_vision.media.sources import file_uri, path_from

MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(16)


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (no real pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def files(records: list[MediaFile | SkippedFile]) -> list[str]:
    return [r.path.name for r in records if isinstance(r, MediaFile) and r.kind is not None]


def skipped(records: list[MediaFile | SkippedFile]) -> dict[str, SkippedFile]:
    return {Path(r.path).name: r for r in records if isinstance(r, SkippedFile)}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """b.png, a.png, .hidden.png, notes.txt, clip.mp4, sub/c.png, .cache/d.png, and links:
    a loop back to the root, a link to a file that is not there, and a link that loops."""
    (tmp_path / "b.png").write_bytes(png_bytes(color=(1, 2, 3)))
    (tmp_path / "a.png").write_bytes(png_bytes(color=(4, 5, 6)))
    (tmp_path / ".hidden.png").write_bytes(png_bytes(color=(7, 8, 9)))
    (tmp_path / "notes.txt").write_text("a note")
    (tmp_path / "clip.mp4").write_bytes(MP4)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(png_bytes(color=(10, 11, 12)))
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "d.png").write_bytes(png_bytes(color=(13, 14, 15)))
    (tmp_path / "loop").symlink_to(tmp_path)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    return tmp_path


# --- walking folders ---


def test_a_folder_is_walked_in_name_order_without_hidden_files(tree: Path) -> None:
    records = list(scan(tree, kinds=("image",)))
    assert files(records) == ["a.png", "b.png"]
    # Other files are passed over as kind None; a broken link and a looping link are reported.
    others = sorted(r.path.name for r in records if isinstance(r, MediaFile) and r.kind is None)
    assert others == ["clip.mp4", "notes.txt"]
    assert set(skipped(records)) == {"dangling.png", "self"}


def test_recursive_enters_sub_folders_but_never_a_linked_one(tree: Path) -> None:
    records = list(scan(tree, kinds=("image",), recursive=True))
    assert files(records) == ["a.png", "b.png", "c.png"]
    assert all("loop" not in str(r.path) for r in records)


def test_hidden_true_takes_hidden_files_and_folders(tree: Path) -> None:
    names = files(list(scan(tree, kinds=("image",), recursive=True, hidden=True)))
    assert names == ["d.png", ".hidden.png", "a.png", "b.png", "c.png"]  # .cache/ sorts first


def test_a_pattern_picks_names_and_a_dot_pattern_picks_hidden_ones(tree: Path) -> None:
    assert files(list(scan(tree, kinds=("image",), pattern="b*"))) == ["b.png"]
    assert files(list(scan(tree, kinds=("image",), pattern=".*"))) == [".hidden.png"]


def test_links_that_loop_or_point_nowhere_are_reported_not_raised(tree: Path) -> None:
    reported = skipped(list(scan(tree, kinds=("image",), recursive=True)))
    assert isinstance(reported["dangling.png"].error, MediaNotFoundError)
    assert "broken link" in str(reported["dangling.png"])
    assert isinstance(reported["self"].error, MediaNotFoundError)
    assert "cannot be followed" in str(reported["self"])


def test_a_folder_that_cannot_be_listed_is_reported_and_the_walk_goes_on(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    records = list(scan(tree, kinds=("image",), recursive=True))
    assert files(records) == ["a.png", "b.png"]
    assert "folder cannot be listed (Permission denied)" in str(skipped(records)["sub"])


# --- paths and patterns ---


def test_files_named_by_the_caller_must_be_of_the_kinds_asked_for(tree: Path) -> None:
    records = list(
        scan([tree / "b.png", tree / "notes.txt", tree / "missing.png"], kinds=("image",))
    )
    assert files(records) == ["b.png"]
    assert next(r for r in records if isinstance(r, MediaFile)).explicit
    reported = skipped(records)
    assert isinstance(reported["notes.txt"].error, UnsupportedMediaError)
    assert "is not an image; it is a text file" in str(reported["notes.txt"])
    assert "file not found" in str(reported["missing.png"])


def test_a_file_named_like_media_that_is_not_is_reported_even_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.txt").write_bytes(b"")
    records = list(scan(tmp_path, kinds=("image",)))
    reported = skipped(records)
    assert set(reported) == {"fake.jpg", "empty.png"}  # an empty .txt is not named like an image
    assert isinstance(reported["empty.png"].error, EmptyInputError)
    assert "first bytes match no known format" in str(reported["fake.jpg"])


def test_report_others_reports_every_file_that_is_not_of_the_kinds(tree: Path) -> None:
    reported = skipped(list(scan(tree, kinds=("video",), report_others=True)))
    assert {"a.png", "b.png", "notes.txt"} <= set(reported)
    assert "not a video container the service takes (avi, flv" in str(reported["notes.txt"])


def test_kinds_are_told_by_first_bytes_and_text_by_suffix(tree: Path) -> None:
    (tree / "photo.txt").write_bytes(png_bytes(color=(1, 1, 1)))  # an image, whatever its name
    found = {
        r.path.name: (r.kind, r.format, r.mime_type)
        for r in scan(tree, kinds=("image", "video", "text"))
        if isinstance(r, MediaFile)
    }
    assert found["photo.txt"] == ("image", "png", "image/png")
    assert found["clip.mp4"] == ("video", "mp4", "video/mp4")
    assert found["notes.txt"] == ("text", "text", "text/plain")


def test_a_glob_crosses_folders_with_double_star_never_through_links(tree: Path) -> None:
    records = list(scan(str(tree / "**" / "*.png"), kinds=("image",)))
    assert files(records) == ["a.png", "b.png", "c.png"]
    assert all("loop" not in str(r.path) for r in records)
    assert files(list(scan(str(tree / "*.png"), kinds=("image",)))) == ["a.png", "b.png"]


def test_a_trailing_double_star_takes_the_files_of_every_folder(tree: Path) -> None:
    assert files(list(scan(str(tree / "**"), kinds=("image",)))) == ["a.png", "b.png", "c.png"]


def test_a_pattern_that_matches_nothing_is_reported(tree: Path) -> None:
    (record,) = list(scan(str(tree / "*.webp"), kinds=("image",)))
    assert isinstance(record, SkippedFile) and "no file matches this pattern" in str(record)


def test_a_path_with_glob_characters_that_exists_is_that_file(tmp_path: Path) -> None:
    odd = tmp_path / "shot[1].png"
    odd.write_bytes(png_bytes(color=(9, 9, 9)))
    assert files(list(scan(odd, kinds=("image",)))) == ["shot[1].png"]


# --- image headers ---


def test_an_image_header_gives_its_size(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(color=(1, 2, 3)))
    (record,) = list(scan(tmp_path / "a.png", kinds=("image",)))
    assert isinstance(record, MediaFile)
    assert (record.width, record.height, record.size) == (8, 6, len(png_bytes(color=(1, 2, 3))))


@pytest.mark.parametrize("side", [50_000, 12_000])
def test_a_header_claiming_too_many_pixels_is_reported_as_a_bomb(tmp_path: Path, side: int) -> None:
    # 50000x50000 trips Pillow's own bomb error; 12000x12000 only the project's pixel limit.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(side, side))
    assert bomb.stat().st_size < 200
    (record,) = list(scan(bomb, kinds=("image",)))
    assert isinstance(record, SkippedFile) and isinstance(record.error, UnsupportedMediaError)
    assert "bomb" in str(record) or "pixel safety limit" in str(record)


def test_verify_reads_a_png_to_its_end(tmp_path: Path) -> None:
    whole = png_bytes(color=(1, 2, 3))
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) - 20])
    assert isinstance(next(scan(tmp_path / "cut.png", kinds=("image",))), MediaFile)
    (record,) = list(scan(tmp_path / "cut.png", kinds=("image",), verify=True))
    assert isinstance(record, SkippedFile) and isinstance(record.error, CorruptMediaError)


# --- names that are not UTF-8, digests, bytes ---


def test_a_name_that_is_not_utf8_is_shown_escaped_and_still_reaches_the_file(
    tmp_path: Path,
) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    with open(raw, "wb") as handle:
        handle.write(png_bytes(color=(5, 5, 5)))
    (record,) = [r for r in scan(tmp_path, kinds=("image",)) if isinstance(r, MediaFile)]
    assert record.text.endswith("caf\\xe9.png")
    record.text.encode("utf-8")  # printable everywhere: JSON, terminals, logs
    assert path_from(record.uri) == record.path
    assert path_from(file_uri(record.path)).read_bytes() == png_bytes(color=(5, 5, 5))


def test_the_digest_is_the_sha256_of_the_content_computed_once(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(color=(1, 2, 3)))
    (record,) = list(scan(tmp_path / "a.png", kinds=("image",)))
    assert isinstance(record, MediaFile)
    assert record.digest() == hashlib.sha256(png_bytes(color=(1, 2, 3))).hexdigest()
    (tmp_path / "a.png").write_bytes(b"changed")
    assert record.digest() == hashlib.sha256(png_bytes(color=(1, 2, 3))).hexdigest()


def test_bytes_without_a_file_follow_the_same_rules() -> None:
    record = inspect_bytes(png_bytes(color=(1, 2, 3)), "upload", ("image",))
    assert (
        isinstance(record, MediaFile)
        and record.format == "png"
        and record.width == 8
        and record.height == 6
    )
    refused = inspect_bytes(b"hello", "upload", ("image",))
    assert isinstance(refused, SkippedFile) and "is not an image" in str(refused)


# --- reporting ---


def test_skips_warn_raise_or_stay_quiet_and_keep_every_file(tmp_path: Path) -> None:
    skipped_file = next(iter(scan(tmp_path / "missing.png", kinds=("image",))))
    assert isinstance(skipped_file, SkippedFile)

    warned = Skips("warn", UserWarning, "TheReader")
    with pytest.warns(UserWarning, match=r"TheReader skipped .*missing\.png: file not found"):
        warned(skipped_file)
    quiet = Skips("ignore", UserWarning, "TheReader")
    quiet(skipped_file)
    assert warned.files == quiet.files == [skipped_file]
    with pytest.raises(MediaNotFoundError):
        Skips("raise", UserWarning, "TheReader")(skipped_file)
    with pytest.raises(ValueError, match="on_error must be"):
        check_on_error("loud")


def test_a_skipped_file_reads_as_path_and_reason() -> None:
    record = inspect_bytes(b"x", "notes.bin", ("image",))
    assert isinstance(record, SkippedFile)
    assert str(record) == f"notes.bin: {record.error.reason}"
