"""Importing Ray: on first use, with an error that names the ``ray`` extra when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..wire.errors import MissingDependencyError


def load_ray(purpose: str = "tongyi_vision.ray") -> ModuleType:
    """``ray``, with Ray Data, imported now (the ``ray`` extra)."""
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "ray", "ray", purpose) from exc
    return ray
