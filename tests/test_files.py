"""One folder walk for every loader: sorted, shell-like hidden files, no linked folders."""

from __future__ import annotations

from pathlib import Path

from tongyi_vision._clips import video_files
from tongyi_vision._exceptions import MediaNotFoundError
from tongyi_vision._files import walk_folder


def _tree(root: Path) -> None:
    (root / "b.mp4").write_bytes(b"x")
    (root / "a.mp4").write_bytes(b"x")
    (root / ".hidden.mp4").write_bytes(b"x")
    (root / "sub").mkdir()
    (root / "sub" / "c.mp4").write_bytes(b"x")
    (root / ".cache").mkdir()
    (root / ".cache" / "d.mp4").write_bytes(b"x")
    (root / "loop").symlink_to(root)
    (root / "dangling.mp4").symlink_to(root / "nowhere.mp4")


def test_walk_is_sorted_skips_hidden_and_linked_folders_and_keeps_broken_links(
    tmp_path: Path,
) -> None:
    _tree(tmp_path)
    found = list(walk_folder(tmp_path, "*.mp4", recursive=True))
    assert found == [
        tmp_path / "a.mp4",
        tmp_path / "b.mp4",
        tmp_path / "dangling.mp4",
        tmp_path / "sub" / "c.mp4",
    ]
    assert list(walk_folder(tmp_path, ".*", recursive=False)) == [tmp_path / ".hidden.mp4"]


def test_a_folder_that_cannot_be_listed_is_yielded_as_an_error(tmp_path: Path) -> None:
    (error,) = list(walk_folder(tmp_path / "missing"))
    assert isinstance(error, MediaNotFoundError)
    assert "cannot be listed" in str(error)


def test_video_files_do_not_descend_into_a_linked_folder(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list(video_files(tmp_path, recursive=True))
    assert not any(isinstance(item, MediaNotFoundError) for item in found)
    assert tmp_path / "loop" / "a.mp4" not in found
    assert tmp_path / "sub" / "c.mp4" in found


def test_hidden_true_takes_hidden_files_and_folders(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list(walk_folder(tmp_path, "*.mp4", recursive=True, hidden=True))
    assert tmp_path / ".hidden.mp4" in found
    assert tmp_path / ".cache" / "d.mp4" in found
    assert tmp_path / "loop" / "a.mp4" not in found
