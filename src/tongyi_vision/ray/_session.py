"""Importing Ray: on first use, with an error that names the ``ray`` extra when it is missing."""

from __future__ import annotations

import importlib
import os
import tempfile
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


def start_ray(ray: ModuleType, address: str | None = None, **options: object) -> None:
    """``ray.init``: connect to ``address`` (or ``RAY_ADDRESS``, or a cluster started on this
    machine with ``ray start``), else start a Ray of this machine bound to 127.0.0.1 only,
    with Ray's usage reports off (it would otherwise listen on every interface and report
    to its makers)."""
    if address or os.environ.get("RAY_ADDRESS") or _local_cluster_running():
        ray.init(address=address or None, **options)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, **options)


def _local_cluster_running() -> bool:
    """Whether ``ray start`` left a cluster's address for this machine's drivers."""
    return os.path.exists(os.path.join(tempfile.gettempdir(), "ray", "ray_current_cluster"))
