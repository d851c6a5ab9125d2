"""How public names show where users import them from: ``tongyi_vision.Client``, not the
private module that defines it (as httpx does), in reprs, tracebacks and the API reference."""

from __future__ import annotations

import inspect
from typing import Any


def show_as_public(namespace: dict[str, Any]) -> None:
    """Give each class and function of a package's ``__all__`` that package as its module."""
    package = namespace["__name__"]
    for value in map(namespace.get, namespace["__all__"]):
        defined = isinstance(value, type) or inspect.isfunction(value)
        if defined and value.__module__.startswith(package + "."):
            value.__module__ = package
