"""Sample media drawn on the spot, for demos, examples and your own tests.

The emulator's vectors are not semantic: an image is nearest to itself and to
resized copies of itself, nothing more. Simple shapes in distinct colours give
image-to-image search an obvious right answer there, and videos made of
coloured segments give clip search one, so a test written against the emulator
can check it. Everything is drawn by code: no third-party media. Pillow (the
``image`` extra) and PyAV (the ``video`` extra) are imported only when
something is drawn::

    from tongyi_vision.samples import draw_shape, generate_sample_video

    draw_shape("circle", (220, 30, 40), size=128).save("red-circle.png")
    generate_sample_video("colours.mp4", seconds=12, segment_seconds=4)
"""

from .._public import show_as_public
from .images import (
    RGB,
    SAMPLE_IMAGES,
    SAMPLE_TEXTS,
    SHAPES,
    SampleImage,
    draw_image,
    draw_shape,
    image_bytes,
    sample_image,
    write_sample_images,
    write_sample_texts,
)
from .video import DEFAULT_COLOURS, generate_sample_video, preferred_codec

__all__ = [
    "DEFAULT_COLOURS",
    "RGB",
    "SAMPLE_IMAGES",
    "SAMPLE_TEXTS",
    "SHAPES",
    "SampleImage",
    "draw_image",
    "draw_shape",
    "generate_sample_video",
    "image_bytes",
    "preferred_codec",
    "sample_image",
    "write_sample_images",
    "write_sample_texts",
]

show_as_public(globals())
