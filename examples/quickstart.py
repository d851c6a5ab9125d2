"""The core client on a handful of parts: texts, an image from a file, the same image as bytes,
and a MultiImage group, with the usage and cost of the call.

    python examples/quickstart.py

With EMPIRIOLABS_API_KEY (or DASHSCOPE_API_KEY) set, it calls the live API. Without a key it
starts the local emulator in this process; its vectors are deterministic but not semantic,
so only "equal inputs, equal vectors" and "similar pixels, near vectors" hold there.

Needs ``pip install 'tongyi-vision[image,emulator]'`` (Pillow draws the sample pictures).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tongyi_vision import Client, Image, MultiImage
from tongyi_vision.samples import draw_shape


@contextlib.contextmanager
def make_client() -> Iterator[Client]:
    """A client of the live API when a key is set, else of an emulator running in-process."""
    if os.environ.get("EMPIRIOLABS_API_KEY") or os.environ.get("DASHSCOPE_API_KEY"):
        dialect = None if os.environ.get("EMPIRIOLABS_API_KEY") else "dashscope"
        with Client(dialect=dialect) as client:
            print(f"live API: {client.base_url} ({client.dialect} dialect)")
            yield client
        return
    from tongyi_vision.emulator import running_emulator

    with (
        running_emulator(api_key="quickstart-key") as url,
        Client("quickstart-key", base_url=url) as client,
    ):
        print(f"no API key set: the emulator at {url} (its vectors are not semantic)")
        yield client


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, make_client() as client:
        red = Path(folder) / "red-circle.png"
        blue = Path(folder) / "blue-square.png"
        green = Path(folder) / "green-square.png"
        draw_shape("circle", (220, 30, 40), size=128).save(red)
        draw_shape("square", (30, 70, 200), size=128).save(blue)
        draw_shape("square", (30, 160, 60), size=128).save(green)
        parts = [
            "a red circle on a white background",
            "a blue square on a white background",
            Image(red),  # a local file: read, checked and sent as a data URI
            Image(red.read_bytes()),  # the same picture, as bytes
            MultiImage([blue, green]),  # two pictures, one vector
        ]
        result = client.embed(parts)

        print(f"{len(result.vectors)} vectors of {result.dimension} numbers from {result.model}")
        labels = ["text: red circle", "text: blue square", "image file", "image bytes", "group"]
        for label, vector in zip(labels, result.vectors, strict=True):
            print(f"  {label:<18} {[round(x, 4) for x in vector[:3]]} ...")
        print(
            f"image file vs image bytes: cosine {cosine(result.vectors[2], result.vectors[3]):.3f}"
        )
        print(
            f"text vs text:              cosine {cosine(result.vectors[0], result.vectors[1]):.3f}"
        )
        usage = result.usage
        print(
            f"usage: {usage.total_tokens} tokens (text {usage.text_tokens}, media "
            f"{usage.media_tokens}) in {usage.requests} requests, ${usage.cost_usd:.6f}"
        )
        if result.vectors[2] != result.vectors[3]:
            raise SystemExit("the same picture gave two different vectors")


if __name__ == "__main__":
    main()
