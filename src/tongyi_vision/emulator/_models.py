"""The models the emulator serves, and the native ``parameters`` each one takes.

contract.md, "Dated snapshots, parameters and regions": the undated names take
``dimension`` from a fixed list and ``fps``; the ``-2026-03-06`` snapshots take any
``dimension`` in 64..max, and also ``res_level``, ``max_video_frames``, ``instruct``
and fusion (several modalities in one content object). The table and its figures
are the wire's (:data:`tongyi_vision.wire.limits.MODELS`), shared with the client;
this module refuses, as the service does, what a model does not take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..wire.limits import (
    DEFAULT_MAX_VIDEO_FRAMES,
    DEFAULT_RES_LEVEL,
    MAX_VIDEO_FRAMES,
    MODELS,
    RES_LEVEL_TOKENS,
    ModelSpec,
    base_model,
)
from ._errors import ApiFault, bad_request

DEFAULT_FPS = 1.0


def served_model(name: str) -> ModelSpec:
    """The model called ``name``; raises a 404 ``ModelNotFound`` :class:`ApiFault` for any
    other name, as the service does (a dated name it does not know included)."""
    spec = MODELS.get(name)
    if spec is None:
        raise ApiFault(
            404,
            f"model {name!r} does not exist; known models: {', '.join(MODELS)}",
            param="model",
        )
    return spec


def fusing_model(spec: ModelSpec) -> str:
    """The model of ``spec``'s family that takes what it does not (fusion, the newer
    parameters): where an error message sends the caller."""
    family = base_model(spec.name)
    for other in MODELS.values():
        if other.fuses and base_model(other.name) == family:
            return other.name
    return next(other.name for other in MODELS.values() if other.fuses)


@dataclass(frozen=True)
class Options:
    """What a request's vectors and bill depend on besides its contents.

    ``res_level`` and ``max_video_frames`` are ``None`` for the undated models, which
    bill images by their pixels and sample video without a frame cap.
    """

    dialect: str
    dimension: int
    fps: float = DEFAULT_FPS
    media_roots: tuple[tuple[str, Path], ...] = ()
    res_level: int | None = None
    max_video_frames: int | None = None
    instruct: str | None = None


def _takes(spec: ModelSpec, parameter: str) -> bool:
    return parameter in spec.parameters


def gateway_options(spec: ModelSpec, media_roots: tuple[tuple[str, Path], ...]) -> Options:
    """The openai dialect's options: it has no ``parameters``, so the model's full size
    and, on a snapshot, its defaults."""
    return Options(
        "openai",
        spec.default_dimension,
        media_roots=media_roots,
        res_level=DEFAULT_RES_LEVEL if _takes(spec, "res_level") else None,
        max_video_frames=DEFAULT_MAX_VIDEO_FRAMES if _takes(spec, "max_video_frames") else None,
    )


def native_options(
    spec: ModelSpec, parameters: object, media_roots: tuple[tuple[str, Path], ...]
) -> Options:
    """The options a native request's ``parameters`` (as parsed JSON) ask for, checked
    against ``spec``. Values are checked as sent: JSON ``true`` is no number here, and
    ``"768"`` no size.

    Raises a 400 ``InvalidParameter`` :class:`ApiFault` naming the parameter for a value of
    the wrong type or out of range, or a parameter the model does not take.
    """
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise bad_request(
            "invalid request body: parameters: Input should be an object", param="parameters"
        )
    given = {name: value for name, value in parameters.items() if value is not None}
    for name in ("res_level", "max_video_frames", "instruct", "fps"):
        if name in given and not _takes(spec, name):
            raise bad_request(
                f"parameters.{name} is not supported by {spec.name}: only "
                f"{fusing_model(spec)} takes it",
                param=f"parameters.{name}",
            )
    dimension = spec.default_dimension
    if "dimension" in given:
        value = given["dimension"]
        if not _is_int(value) or not spec.accepts_dimension(value):
            raise bad_request(
                f"parameters.dimension {value!r} is not available for {spec.name}: send "
                f"{spec.describe_dimensions()}",
                param="parameters.dimension",
            )
        dimension = value
    fps = DEFAULT_FPS
    if "fps" in given:
        value = given["fps"]
        number = float(value) if _is_number(value) else math.nan
        if not 0.0 <= number <= 1.0:
            raise bad_request(
                f"parameters.fps {value!r} is out of range: it is a frame-sampling ratio "
                "in [0, 1], not frames per second",
                param="parameters.fps",
            )
        fps = number
    output_type = given.get("output_type")
    if output_type not in (None, "dense"):
        raise bad_request(
            f"parameters.output_type {output_type!r} is not supported: send 'dense'",
            param="parameters.output_type",
        )
    instruct = given.get("instruct")
    if instruct is not None and (not isinstance(instruct, str) or not instruct.strip()):
        raise bad_request(
            "parameters.instruct must be a non-empty string: the task the query is for, in English",
            param="parameters.instruct",
        )
    res_level = frames = None
    if _takes(spec, "res_level"):
        res_level = _integer(given, "res_level", 0, len(RES_LEVEL_TOKENS) - 1, DEFAULT_RES_LEVEL)
    if _takes(spec, "max_video_frames"):
        frames = _integer(given, "max_video_frames", 1, MAX_VIDEO_FRAMES, DEFAULT_MAX_VIDEO_FRAMES)
    return Options("dashscope", dimension, fps, media_roots, res_level, frames, instruct)


def _is_int(value: object) -> bool:
    # JSON true is no number of anything, though Python counts it as 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def _integer(given: Mapping[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = given.get(name)
    if value is None:
        return default
    if not _is_int(value) or not low <= value <= high:
        raise bad_request(
            f"parameters.{name} {value!r} is out of range: send an integer in {low}..{high} "
            f"(default {default})",
            param=f"parameters.{name}",
        )
    return int(value)


def image_tokens(options: Options, pixel_tokens: int) -> int:
    """Tokens billed for one image: its ``res_level`` tier on a snapshot, else by its pixels."""
    if options.res_level is None:
        return pixel_tokens
    return RES_LEVEL_TOKENS[options.res_level]


def video_frames(options: Options, seconds: float) -> int:
    """Frames sampled from a video ``seconds`` long: one per second scaled by ``fps`` (at
    least one), at most ``max_video_frames`` on a snapshot."""
    # Rounded first, so that 10 s at 0.3 is 3 frames, not ceil(3.0000000000000004) = 4.
    frames = max(1, math.ceil(round(seconds * options.fps, 9)))
    if options.max_video_frames is not None:
        frames = min(frames, options.max_video_frames)
    return frames
