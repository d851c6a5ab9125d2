"""Settings resolved once, when a client is constructed: argument, environment, default."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ..wire.errors import ConfigurationError
from ..wire.limits import (
    DEFAULT_MODEL,
    MEDIA_PARAMETERS,
    MODELS,
    ModelSpec,
    model_spec,
    parameter_problem,
)

DialectName = Literal["openai", "dashscope"]
Region = Literal["singapore", "beijing"]

# The native dialect's service roots by region; keys are bound to one region.
REGION_URLS: dict[str, str] = {
    "singapore": "https://dashscope-intl.aliyuncs.com",
    "beijing": "https://dashscope.aliyuncs.com",
}
# Model Studio's per-workspace domains (Singapore), which it recommends for stability.
WORKSPACE_URL = "https://{workspace}.ap-southeast-1.maas.aliyuncs.com"
_WORKSPACE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class UnknownModelWarning(UserWarning):
    """The model name is not in the client's table: it is used with the most permissive
    rules (any size, every parameter, fusion), checked only by the service, and priced as
    the dearest model."""


# What a bearer token may hold: visible ASCII, nothing else (RFC 6750 is stricter still).
_KEY = re.compile(r"[\x21-\x7e]+")

DIALECT_DEFAULTS: dict[str, tuple[str, str]] = {
    # dialect: (environment variable of the key, default base URL)
    "openai": ("EMPIRIOLABS_API_KEY", "https://api.empiriolabs.ai"),
    "dashscope": ("DASHSCOPE_API_KEY", "https://dashscope-intl.aliyuncs.com"),
}


class Secret:
    """A string that never shows itself in a repr, str, log record or pickle."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret itself; only for building the request header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError(
            "an API key cannot be pickled; read it from the environment in the other process"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """The settings of a client, resolved once. ``parameters`` are the native parameters it
    sends with media (``res_level``, ``fps``, ``max_video_frames``), ``instruct`` the
    instruction it sends with queries; ``region`` is the region the base URL belongs to
    (``None`` for another host)."""

    api_key: Secret = field(repr=False)
    base_url: str
    model: str
    dialect: DialectName
    dimension: int | None
    expected_dimension: int | None
    region: Region | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    instruct: str | None = None

    @property
    def key_env(self) -> str:
        return DIALECT_DEFAULTS[self.dialect][0]

    @property
    def spec(self) -> ModelSpec:
        """The model's rules (permissive ones for an unknown name)."""
        return model_spec(self.model)


def resolve_settings(
    *,
    api_key: str | None,
    base_url: str | None,
    model: str | None,
    dialect: str | None,
    dimension: int | None,
    region: str | None = None,
    workspace: str | None = None,
    res_level: int | None = None,
    max_video_frames: int | None = None,
    fps: float | None = None,
    instruct: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    chosen_dialect = dialect or env.get("TONGYI_VISION_DIALECT") or "openai"
    if chosen_dialect not in DIALECT_DEFAULTS:
        raise ConfigurationError(
            f"dialect must be 'openai' or 'dashscope', not {chosen_dialect!r} "
            "(from the argument or TONGYI_VISION_DIALECT)"
        )
    key_env, default_url = DIALECT_DEFAULTS[chosen_dialect]
    key = api_key if api_key is not None else env.get(key_env)
    # a key pasted from a file often ends in a newline, which no header may carry
    key = key.strip() if key else key
    if not key:
        raise ConfigurationError(
            f"no API key: set {key_env} or pass api_key=... "
            f"(the {chosen_dialect} dialect reads {key_env})"
        )
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        # Never echo it: the message names the variable, not the value.
        raise ConfigurationError(
            f"the API key (from api_key=... or {key_env}) has a character no HTTP header can "
            "carry (a space, a newline, a NUL or a non-ASCII character); check where it came from"
        )
    chosen_url = base_url or _regional_url(chosen_dialect, region, workspace)
    url = (chosen_url or env.get("TONGYI_VISION_BASE_URL") or default_url).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, not {url!r}")
    chosen_model = model or env.get("TONGYI_VISION_MODEL") or DEFAULT_MODEL
    spec = model_spec(chosen_model)
    if not spec.known:
        warnings.warn(
            f"{chosen_model!r} is not a model this client knows ({', '.join(MODELS)}): it is "
            "used with the most permissive rules, checked only by the service, and priced as "
            "the dearest model",
            UnknownModelWarning,
            stacklevel=3,
        )
    default = spec.default_dimension or None
    expected = dimension if dimension is not None else default
    if dimension is not None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise ConfigurationError(f"dimension must be a positive int, not {dimension!r}")
        if not spec.accepts_dimension(dimension):
            raise ConfigurationError(
                f"{chosen_model} makes vectors of {spec.describe_dimensions()} dimensions, "
                f"not {dimension}"
            )
        if chosen_dialect == "openai" and spec.known and dimension != spec.default_dimension:
            raise ConfigurationError(
                f"the openai dialect (gateway) fixes {chosen_model} at {spec.default_dimension} "
                f"dimensions; use dialect='dashscope' for dimension={dimension}"
            )
    given: dict[str, Any] = {
        "res_level": res_level,
        "max_video_frames": max_video_frames,
        "fps": fps,
        "instruct": instruct,
    }
    for name, value in given.items():
        if value is None:
            continue
        problem = parameter_problem(name, value)
        if problem is None:
            problem = unsupported_parameter(name, chosen_model, chosen_dialect)
        if problem is not None:
            raise ConfigurationError(problem)
    return Settings(
        api_key=Secret(key),
        base_url=url,
        model=chosen_model,
        dialect=cast(DialectName, chosen_dialect),
        dimension=dimension,
        expected_dimension=expected,
        region=region_of(url),
        parameters={k: given[k] for k in MEDIA_PARAMETERS if given[k] is not None},
        instruct=instruct,
    )


def unsupported_parameter(name: str, model: str, dialect: str) -> str | None:
    """Why ``model`` in ``dialect`` cannot be sent the parameter ``name``, or ``None``."""
    if dialect == "openai":
        return (
            f"{name} is a parameter of the native API; the openai dialect (the gateway) has "
            f"no way to send it: use dialect='dashscope', or leave {name} unset"
        )
    spec = model_spec(model)
    if name not in spec.parameters:
        takers = [m for m, s in MODELS.items() if name in s.parameters]
        return (
            f"{model} does not take {name}"
            + (f" (the dated snapshots do: {', '.join(takers)})" if takers else "")
            + f"; leave {name} unset, or use such a model"
        )
    return None


def _regional_url(dialect: str, region: str | None, workspace: str | None) -> str | None:
    """The native service root a region or a workspace names (``None`` if neither is given)."""
    if region is None and workspace is None:
        return None
    if dialect != "dashscope":
        raise ConfigurationError(
            "region and workspace choose Model Studio's native endpoints; they need "
            "dialect='dashscope' (the openai dialect goes to the gateway: set base_url instead)"
        )
    if region is not None and region not in REGION_URLS:
        raise ConfigurationError(
            f"region must be {' or '.join(map(repr, REGION_URLS))}, not {region!r}"
        )
    if workspace is None:
        return REGION_URLS[cast(str, region)]
    if not isinstance(workspace, str) or not _WORKSPACE.fullmatch(workspace):
        raise ConfigurationError(
            f"workspace must be a workspace id such as 'ws-abc123' (lower-case letters, digits "
            f"and hyphens), not {workspace!r}"
        )
    if region not in (None, "singapore"):
        raise ConfigurationError(
            f"workspace domains are in Singapore (ap-southeast-1), not {region}; drop "
            "region=..., or the workspace for a Beijing key"
        )
    return WORKSPACE_URL.format(workspace=workspace)


def region_of(url: str) -> Region | None:
    """The region a native service root belongs to, from its host; ``None`` for another."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    if host == "dashscope-intl.aliyuncs.com" or host.endswith(".ap-southeast-1.maas.aliyuncs.com"):
        return "singapore"
    if host == "dashscope.aliyuncs.com":
        return "beijing"
    return None
