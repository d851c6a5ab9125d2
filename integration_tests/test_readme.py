"""Every Python block of README.md and docs/quickstart.md runs, as written, against the emulator.

Each block runs in its own interpreter, in a folder holding the files the README
names (``photos/bike.jpg``, ``front.jpg``, ``back.jpg``), with the environment
pointing the clients at the session's emulator. Shell blocks of the README and
every docs page are checked too: each ``tongyi-vision`` command they show must parse.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tongyi_vision.cli import build_parser
from tongyi_vision.samples import image_bytes, sample_image, write_sample_images

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", ROOT / "docs" / "quickstart.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def blocks(language: str, pages: tuple[Path, ...] = PAGES) -> list[tuple[str, str]]:
    """``(page: heading above it, code)`` of each fenced block in ``language``."""
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) != language:
                continue
            headings = HEADING.findall(text, 0, match.start())
            title = headings[-1] if headings else "top"
            found.append((f"{page.name}: {title}", match.group(2)))
    return found


PYTHON_BLOCKS = blocks("python")


def test_the_pages_have_python_blocks() -> None:
    assert sum(title.startswith("README") for title, _ in PYTHON_BLOCKS) >= 3
    assert sum(title.startswith("quickstart") for title, _ in PYTHON_BLOCKS) >= 2


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding every file the README's examples name."""
    write_sample_images(tmp_path / "photos", size=128)
    (tmp_path / "photos" / "bike.jpg").write_bytes(image_bytes(sample_image("red-circle.png")))
    (tmp_path / "front.jpg").write_bytes(image_bytes(sample_image("yellow-stripes.jpg")))
    (tmp_path / "back.jpg").write_bytes(image_bytes(sample_image("orange-diamond.jpg")))
    return tmp_path


@pytest.mark.parametrize(
    "code", [code for _, code in PYTHON_BLOCKS], ids=[title for title, _ in PYTHON_BLOCKS]
)
def test_python_block_runs(code: str, emulator: RunningEmulator, workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGYI_VISION_")}
    env.update(
        EMPIRIOLABS_API_KEY=emulator.api_key,
        DASHSCOPE_API_KEY="",
        TONGYI_VISION_BASE_URL=emulator.base_url,
    )
    before = emulator.stats()["succeeded"]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    if "embed" in code:  # it really reached the service
        assert emulator.stats()["succeeded"] > before


def test_shell_commands_of_the_readme_and_docs_parse() -> None:
    commands = []
    every_page = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
    for _, code in blocks("bash", every_page):
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["tongyi-vision"]:
                commands.append(words[1:])
    assert commands
    parser = build_parser()
    for argv in commands:
        if argv[0] == "serve":
            from tongyi_vision.emulator import build_parser as serve_parser

            serve_parser().parse_args(argv[1:])
        else:
            parser.parse_args(argv)
