"""``tongyi_vision.samples``: the public drawing helpers the examples and tests share."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from tongyi_vision import samples
from tongyi_vision.samples import SAMPLE_IMAGES, SHAPES, draw_image, draw_shape


def test_every_shape_draws_a_distinct_picture_of_the_asked_size() -> None:
    pictures = [draw_shape(shape, (30, 70, 200), size=48) for shape in SHAPES]
    assert all(p.size == (48, 48) and p.mode == "RGB" for p in pictures)
    assert len({p.tobytes() for p in pictures}) == len(SHAPES)


def test_the_shape_has_the_colour_and_the_corner_the_background() -> None:
    picture = draw_shape("square", (220, 30, 40), size=32, background=(0, 0, 0))
    assert picture.getpixel((16, 16)) == (220, 30, 40)
    assert picture.getpixel((0, 0)) == (0, 0, 0)


def test_a_sample_image_is_its_shape_drawn_on_its_background() -> None:
    for sample in SAMPLE_IMAGES:
        expected = draw_shape(sample.shape, sample.colour, 40, sample.background)
        assert draw_image(sample, 40).tobytes() == expected.tobytes()


def test_an_unknown_shape_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'ellipse'.*circle, square"):
        draw_shape("ellipse", (0, 0, 0))


def test_public_names_are_exported_and_documented() -> None:
    for name in samples.__all__:
        value = getattr(samples, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_importing_the_module_does_not_import_pillow() -> None:
    code = "import sys, tongyi_vision.samples; print('PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
