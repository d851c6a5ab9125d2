"""What an emulator instance does: every command-line flag has a field here."""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union, get_args

from ..wire.errors import MissingDependencyError
from ..wire.limits import MAX_IMAGE_BYTES, MAX_IMAGES_PER_REQUEST

UsageShape = Literal["new", "old"]
Region = Literal["singapore", "beijing"]
REGIONS: tuple[Region, ...] = get_args(Region)
MediaRoots = Union[Mapping[str, "str | Path"], Iterable[tuple[str, "str | Path"]], None]  # noqa: UP007
KeyRegions = Union[Mapping[str, str], Iterable[tuple[str, str]], None]  # noqa: UP007

# 8 images at the 3 MB limit, base64-encoded (4 bytes per 3), plus room for the JSON around
# them: 40 MiB. Larger bodies are refused before they are parsed.
DEFAULT_MAX_BODY_BYTES = (
    MAX_IMAGES_PER_REQUEST * math.ceil(MAX_IMAGE_BYTES / 3) * 4 + 8 * 1024 * 1024
)
# Seconds a connection may sit idle between requests, and may take to send a request's head
# (request line and headers) from its first byte or, for a new connection, from connecting.
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
DEFAULT_HEADER_TIMEOUT = 5.0
# A request head (request line and headers) larger than this is refused with 431; the
# client's heads are well under 2 KiB.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024


def require_server() -> None:
    """Raise :class:`~tongyi_vision.MissingDependencyError` unless the ``emulator`` extra
    (starlette, uvicorn, Pillow) is installed."""
    for module, package in (("starlette", "starlette"), ("uvicorn", "uvicorn"), ("PIL", "Pillow")):
        try:
            __import__(module)
        except ImportError as exc:
            raise MissingDependencyError(package, "emulator", "The emulator") from exc


def parse_latency(value: str | float | tuple[float, float]) -> tuple[float, float]:
    """``0.1`` -> ``(0.1, 0.1)``; ``"0.05-0.2"`` -> ``(0.05, 0.2)``: seconds added per request."""
    if isinstance(value, tuple):
        low, high = float(value[0]), float(value[1])
    elif isinstance(value, str) and "-" in value.strip().lstrip("-"):
        first, _, second = value.strip().partition("-")
        low, high = float(first), float(second)
    else:
        low = high = float(value)
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
        raise ValueError(f"latency must be seconds >= 0 or a range LOW-HIGH, not {value!r}")
    return low, high


def parse_media_root(value: str) -> tuple[str, Path]:
    """``"http://media.test/=./photos"`` -> ``("http://media.test/", Path("./photos"))``."""
    # A URL prefix has no use for "=" (query strings); a folder might: split on the last one.
    prefix, sep, directory = value.rpartition("=")
    if not sep or not prefix or not directory:
        raise ValueError(f"a media root is URL_PREFIX=DIR, not {value!r}")
    if not prefix.startswith(("http://", "https://")):
        raise ValueError(f"a media root's prefix must be an http(s) URL, not {prefix!r}")
    return prefix, Path(directory)


def parse_key_region(value: str) -> tuple[str, Region]:
    """``"sk-intl=singapore"`` -> ``("sk-intl", "singapore")``: a key and the region it
    belongs to."""
    # A key may end in "=" (base64); a region name never holds one: split on the last.
    key, sep, region = value.rpartition("=")
    if not sep or not key.strip():
        raise ValueError(f"a key region is KEY=REGION, not {_masked(value)!r}")
    return key, _region(region)


def _region(value: str) -> Region:
    for region in REGIONS:
        if value == region:
            return region
    raise ValueError(f"a region is one of {', '.join(REGIONS)}, not {value!r}")


def _masked(value: str) -> str:
    """A flag's value with its key hidden: keys stay out of error messages."""
    _, sep, region = value.rpartition("=")
    return f"***={region}" if sep else "***"


def _rate(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a fraction in [0, 1], not {value!r}")
    return float(value)


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulator; the keyword arguments of :func:`running_emulator`.

    ``latency`` is seconds added to every embeddings request (a number or a
    ``(low, high)`` range drawn uniformly); ``max_concurrency``, ``rpm`` and
    ``rps`` refuse requests beyond them with 429; the ``*_rate`` fields are
    the fraction of requests that get each random fault, reproducible for a
    given ``seed``. ``media_roots`` maps URL prefixes to local folders.
    ``tpm`` refuses requests beyond that many tokens per minute (and a 60th of it
    per second) with 429 ``Throttling.AllocationQuota``, ``rpm`` beyond that many
    requests per minute (and a 60th of it per second, from 60 a minute up) with
    ``Throttling.RateQuota``; ``surge`` refuses with plain ``Throttling`` a second
    holding more than ``surge`` times the requests per second of the minute before
    (counted as at least one per second). ``region`` is the region the emulator
    plays (``None``: both); ``key_regions`` binds keys to regions: on the native
    path a key bound to the other region is refused with 401 ``InvalidApiKey``,
    and bound keys are accepted beside ``api_key``.
    ``keep_alive_timeout`` closes a connection idle that long between requests,
    ``header_timeout`` one whose request head is not in that long after its first
    byte (or after connecting); ``max_header_bytes`` bounds a request head.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    media_roots: tuple[tuple[str, Path], ...] = ()
    latency: tuple[float, float] = (0.0, 0.0)
    max_concurrency: int | None = None
    rpm: int | None = None
    rps: float | None = None
    tpm: int | None = None
    surge: float | None = None
    retry_after: float = 1.0
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    usage_shape: UsageShape = "new"
    seed: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    access_log: bool = False
    region: Region | None = None
    key_regions: tuple[tuple[str, Region], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must be non-empty, or None to accept any key")
        for name in ("max_concurrency", "rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")
        if self.rps is not None and not self.rps > 0:
            raise ValueError(f"rps must be > 0, not {self.rps!r}")
        if self.surge is not None and not (
            isinstance(self.surge, (int, float)) and math.isfinite(self.surge) and self.surge >= 1
        ):
            raise ValueError(f"surge must be a factor >= 1, not {self.surge!r}")
        if self.region is not None:
            _region(self.region)
        for key, region in self.key_regions:
            if not isinstance(key, str) or not key.strip():
                raise ValueError("a key bound to a region must be a non-empty string")
            _region(region)
        if not (math.isfinite(self.retry_after) and self.retry_after >= 0):
            raise ValueError(f"retry_after must be seconds >= 0, not {self.retry_after!r}")
        total = 0.0
        for name in ("fail_rate", "throttle_rate", "drop_rate", "malformed_rate"):
            total += _rate(name, getattr(self, name))
        if total > 1.0:
            raise ValueError("fail, throttle, drop and malformed rates add up to more than 1")
        if self.usage_shape not in ("new", "old"):
            raise ValueError(f"usage_shape is 'new' or 'old', not {self.usage_shape!r}")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        for name in ("keep_alive_timeout", "header_timeout"):
            seconds = getattr(self, name)
            if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"{name} must be seconds > 0, not {seconds!r}")
        if self.max_header_bytes < 1024:
            raise ValueError("max_header_bytes must be at least 1024")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], not {self.port}")

    @classmethod
    def from_options(
        cls,
        *,
        latency: str | float | tuple[float, float] = 0.0,
        media_roots: MediaRoots = None,
        key_regions: KeyRegions = None,
        **options: object,
    ) -> EmulatorConfig:
        """A config from friendly values: ``latency="0.05-0.2"``, ``media_roots={prefix: dir}``,
        ``key_regions={key: "beijing"}``."""
        roots: list[tuple[str, Path]] = []
        if isinstance(media_roots, Mapping):
            items: Iterable[tuple[str, str | Path]] = media_roots.items()
        else:
            items = media_roots or ()
        for prefix, directory in items:
            roots.append(parse_media_root(f"{prefix}={directory}"))
        pairs = key_regions.items() if isinstance(key_regions, Mapping) else key_regions or ()
        return cls(
            latency=parse_latency(latency),
            media_roots=tuple(roots),
            key_regions=tuple((key, _region(region)) for key, region in pairs),
            **options,  # type: ignore[arg-type]
        )

    def region_of(self, key: str) -> Region | None:
        """The region ``key`` is bound to, if any."""
        for bound, region in self.key_regions:
            if hmac.compare_digest(bound.encode(), key.encode()):
                return region
        return None
