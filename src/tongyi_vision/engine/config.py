"""Settings resolved once, when a client is constructed: argument, environment, default."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from ..wire.errors import ConfigurationError
from ..wire.limits import DEFAULT_MODEL, MODELS, base_model

DialectName = Literal["openai", "dashscope"]

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
    api_key: Secret = field(repr=False)
    base_url: str
    model: str
    dialect: DialectName
    dimension: int | None
    expected_dimension: int | None

    @property
    def key_env(self) -> str:
        return DIALECT_DEFAULTS[self.dialect][0]


def resolve_settings(
    *,
    api_key: str | None,
    base_url: str | None,
    model: str | None,
    dialect: str | None,
    dimension: int | None,
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
    url = (base_url or env.get("TONGYI_VISION_BASE_URL") or default_url).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, not {url!r}")
    chosen_model = model or env.get("TONGYI_VISION_MODEL") or DEFAULT_MODEL
    spec = MODELS.get(base_model(chosen_model))
    expected = dimension if dimension is not None else (spec.default_dimension if spec else None)
    if dimension is not None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise ConfigurationError(f"dimension must be a positive int, not {dimension!r}")
        if spec is not None and dimension not in spec.dimensions:
            raise ConfigurationError(
                f"{chosen_model} makes vectors of {', '.join(map(str, spec.dimensions))} "
                f"dimensions, not {dimension}"
            )
        if chosen_dialect == "openai" and spec is not None and dimension != spec.default_dimension:
            raise ConfigurationError(
                f"the openai dialect (gateway) fixes {chosen_model} at {spec.default_dimension} "
                f"dimensions; use dialect='dashscope' for dimension={dimension}"
            )
    return Settings(
        api_key=Secret(key),
        base_url=url,
        model=chosen_model,
        dialect=cast(DialectName, chosen_dialect),
        dimension=dimension,
        expected_dimension=expected,
    )
