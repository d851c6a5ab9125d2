"""``tongyi-vision demo``: which backend it picks, and the sample media it draws.

The demo itself runs end to end in ``integration_tests/test_cli.py``; these tests
cover its decisions without a socket.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tongyi_vision.cli import build_parser
from tongyi_vision.cli import demo as _demo
from tongyi_vision.cli.ui import key_in_environment
from tongyi_vision.samples import SAMPLE_IMAGES, SAMPLE_TEXTS, image_bytes, write_sample_images
from tongyi_vision.wire.formats import sniff_image_format


def demo_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


def test_a_gateway_key_selects_the_live_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "sk-live")
    with _demo._backend(demo_args()) as backend:
        assert not backend.emulated
        assert backend.api_key is None  # the adapters read it from the environment
        assert backend.dialect is None
        assert "live API" in backend.description and "EMPIRIOLABS_API_KEY" in backend.description
        assert "sk-live" not in backend.description


def test_a_dashscope_key_alone_selects_the_dashscope_dialect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-native")
    with _demo._backend(demo_args("--base-url", "https://dashscope.aliyuncs.com")) as backend:
        assert not backend.emulated
        assert backend.dialect == "dashscope"
        assert backend.base_url == "https://dashscope.aliyuncs.com"
        assert "dashscope dialect" in backend.description


def test_empty_keys_count_as_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", "")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "")
    assert key_in_environment() is None


def test_samples_are_distinct_images_in_the_formats_their_names_say(tmp_path: Path) -> None:
    paths = write_sample_images(tmp_path, size=64)
    assert [p.name for p in paths] == [s.name for s in SAMPLE_IMAGES]
    contents = [p.read_bytes() for p in paths]
    assert len(set(contents)) == len(contents)
    expected = {".png": "png", ".jpg": "jpeg", ".bmp": "bmp"}
    for path, data in zip(paths, contents, strict=True):
        assert sniff_image_format(data[:16]) == expected[path.suffix]
        with PILImage.open(io.BytesIO(data)) as image:
            assert image.size == (64, 64)
    assert len(set(SAMPLE_TEXTS)) == len(SAMPLE_TEXTS)


def test_the_red_circle_is_red() -> None:
    with PILImage.open(io.BytesIO(image_bytes(SAMPLE_IMAGES[0], size=32))) as image:
        assert image.convert("RGB").getpixel((16, 16)) == SAMPLE_IMAGES[0].colour


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("file:///tmp/x/colours.mp4#t=4,8", "colours.mp4 [4-8 s]"),
        ("/tmp/x/red-circle.png", "red-circle.png"),
        ("red-circle.png", "red-circle.png"),
    ],
)
def test_result_labels(source: str, label: str) -> None:
    assert _demo._short(source) == label
