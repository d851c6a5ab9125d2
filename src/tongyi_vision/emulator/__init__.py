"""A local emulator of the tongyi-embedding-vision API, for tests, demos and benchmarks.

It is a real HTTP server (starlette on uvicorn; ``pip install 'tongyi-vision[emulator]'``)
speaking both dialects at their real paths, with the service's auth, limits,
error bodies and usage shapes. Its vectors are deterministic and content-derived
(equal inputs, equal vectors; similar inputs, near vectors) but NOT semantic.

Command line::

    python -m tongyi_vision.emulator --port 8000 --api-key test-key --latency 0.05-0.2

In process::

    >>> from tongyi_vision import Client
    >>> from tongyi_vision.emulator import running_emulator
    >>> with running_emulator(api_key="test-key") as url:
    ...     with Client("test-key", base_url=url) as client:
    ...         client.embed(["hello"]).vectors[0][:3]

See docs/emulator.md for every flag, the ``X-Emulator-Fault`` header and the
vector and usage formulas.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._public import show_as_public
from ._cli import build_parser, main
from ._config import EmulatorConfig, require_server
from ._faults import FAULT_HEADER, Fault, parse_fault_header

if TYPE_CHECKING:
    from starlette.applications import Starlette


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI (starlette) application; ``app.state.emulator`` holds its state."""
    require_server()
    from ._app import create_app as _create_app

    return _create_app(config)


@contextlib.contextmanager
def running_emulator(config: EmulatorConfig | None = None, **options: Any) -> Iterator[str]:
    """Serve an emulator on 127.0.0.1 (a free port) on a background thread; yield its base URL.

    Options are the fields of :class:`EmulatorConfig`, e.g. ``api_key="k"``,
    ``latency=0.05`` or ``"0.05-0.2"``, ``max_concurrency=4``, ``rpm=600``,
    ``fail_rate=0.1``, ``seed=1``, ``usage_shape="old"``, ``tpm=100_000``,
    ``surge=3``, ``region="beijing"``, ``key_regions={"sk-intl": "singapore"}``,
    ``media_roots={"http://media.test/": "photos"}``. The server stops when the
    block ends.
    """
    require_server()
    from ._server import running_emulator as _running

    with _running(config, **options) as url:
        yield url


__all__ = [
    "FAULT_HEADER",
    "EmulatorConfig",
    "Fault",
    "build_parser",
    "create_app",
    "main",
    "parse_fault_header",
    "running_emulator",
]

show_as_public(globals())
