"""System programs some tests drive (Chromium, Redis): found, or the test skips.

``python3 tasks.py system`` installs them on a Debian machine run as root, and
CI sets ``TONGYI_VISION_REQUIRE_SYSTEM=1`` so that a missing one fails the test
there instead of skipping it.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str) -> str:
    """The path of the program ``name``; skips the test (fails it in CI) when it is missing."""
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} is not installed: `python3 tasks.py system` installs it"
    if os.environ.get("TONGYI_VISION_REQUIRE_SYSTEM") == "1":
        pytest.fail(message)
    pytest.skip(message)
