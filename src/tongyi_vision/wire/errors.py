"""Every error tongyi-vision raises.

::

    TongyiVisionError
    ├── ConfigurationError (ValueError)        bad or missing settings: key, dialect, dimension
    ├── MissingDependencyError (ImportError)   an optional extra is not installed
    ├── InputError (ValueError)                a part is refused before anything is sent
    │   ├── EmptyInputError
    │   ├── TextTooLongError
    │   ├── MediaNotFoundError                 a local file is missing or unreadable
    │   ├── UnsupportedMediaError              a format the service does not take
    │   ├── MediaTooLargeError
    │   ├── TooManyImagesError
    │   └── CorruptMediaError                  a file that cannot be decoded
    └── APIError                               a request failed; carries part_indexes and partial
        ├── APIConnectionError
        │   └── APITimeoutError
        ├── APIResponseValidationError         a 2xx answer that is malformed or incomplete
        │   └── DimensionMismatchError         vectors of another size than was asked for
        └── APIStatusError                     the service answered with an error status
            ├── BadRequestError                400
            │   └── ContentModerationError     400 DataInspectionFailed
            ├── AuthenticationError            401
            ├── PermissionDeniedError          403
            ├── NotFoundError                  404
            ├── RequestTimeoutError            408
            ├── ConflictError                  409
            ├── RequestTooLargeError           413
            ├── RateLimitError                 429; ``limit``: requests, tokens or surge
            └── ServerError                    5xx

An :class:`APIError` raised by an ``embed`` call knows which parts of the call
the failed request carried (``part_indexes``) and what the call had already
finished (``partial``, a :class:`PartialResult`, defined here because every
error of a call carries one): pass ``partial`` back as ``embed(..., resume=...)``
to send only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .results import Usage, Vector

RateLimit = Literal["requests", "tokens", "surge"]
"""Which limit a 429 says was hit: requests per minute (or second), tokens per minute (or
second), or the surge guard (a rate that rose too quickly; also a 429 that does not say)."""


class TongyiVisionError(Exception):
    """Base of every error raised by tongyi-vision.

    An error that ends an ``embed`` call after some of its requests were sent
    carries ``partial``: what the call had finished (see :class:`APIError`).
    """

    partial: PartialResult | None = None


class ConfigurationError(TongyiVisionError, ValueError):
    """A setting is missing or invalid; raised when a client is constructed."""


class MissingDependencyError(TongyiVisionError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        self.purpose = purpose
        super().__init__(
            f"{purpose} needs {package}: install it with  pip install 'tongyi-vision[{extra}]'"
        )

    def __reduce__(self) -> tuple[type[MissingDependencyError], tuple[str, str, str]]:
        # rebuilt from its parts, so it survives a trip to another process
        return type(self), (self.package, self.extra, self.purpose)


class InputError(TongyiVisionError, ValueError):
    """A part was refused before any request was sent.

    ``part_index`` is its position in the call (``None`` outside a call) and
    ``part`` a short description of it.
    """

    def __init__(self, message: str, *, part_index: int | None = None, part: str = "") -> None:
        self.part_index = part_index
        self.part = part
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.part_index is not None:
            where.append(f"part {self.part_index}")
        if self.part:
            where.append(self.part)
        return f"{' '.join(where)}: {self.reason}" if where else self.reason

    def at(self, index: int) -> InputError:
        """Return this error with the part's index in the call filled in."""
        self.part_index = index
        self.args = (self._format(),)
        return self


class EmptyInputError(InputError):
    """An empty text, an empty file, or an empty call where one is not allowed."""


class TextTooLongError(InputError):
    """A text estimated over the model's 1,024-token limit."""


class MediaNotFoundError(InputError, FileNotFoundError):
    """A local file that does not exist or cannot be read."""


class UnsupportedMediaError(InputError):
    """A format the service does not accept and that cannot be converted."""


class MediaTooLargeError(InputError):
    """An image or video over the size limit that cannot be shrunk."""


class TooManyImagesError(InputError):
    """More than eight images in a :class:`~tongyi_vision.MultiImage`."""


class CorruptMediaError(InputError):
    """A file whose header claims a format but whose content cannot be decoded."""


class APIError(TongyiVisionError):
    """A request to the service failed.

    Attributes: ``message``; ``status`` (HTTP status or ``None``); ``code`` (the
    provider's error code); ``request_id``; ``part_indexes`` (the parts of the
    call that the failed request carried); ``partial`` (a
    :class:`~tongyi_vision.PartialResult` with everything the call finished);
    ``hint``: what the client knows of the cause and what to do (shown after the
    message, which stays the provider's own).
    """

    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        part_indexes: tuple[int, ...] = (),
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.part_indexes = part_indexes
        self.partial: PartialResult | None = None
        super().__init__(message)

    def __str__(self) -> str:
        message = f"{self.message}; {self.hint}" if self.hint else self.message
        details = []
        if self.status is not None:
            details.append(f"status {self.status}")
        if self.code:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        if self.part_indexes:
            details.append(f"parts {_short_indexes(self.part_indexes)}")
        return f"{message} ({', '.join(details)})" if details else message


class APIConnectionError(APIError):
    """The service could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIResponseValidationError(APIError):
    """A success answer that is malformed: bad JSON, missing or extra vectors, wrong sizes."""


class DimensionMismatchError(APIResponseValidationError):
    """The service answered with vectors of another size than the one asked for (an undated
    model name may ignore ``dimension``). Not retried: the same request gets the same size."""


class APIStatusError(APIError):
    """The service answered with an error status.

    ``retry_after`` holds the server's ``Retry-After`` hint in seconds, if it sent one.
    """

    retry_after: float | None = None


class BadRequestError(APIStatusError):
    """400: the service refused the body, a URL or a part."""


class ContentModerationError(BadRequestError):
    """400 ``DataInspectionFailed``: content moderation refused an input."""


class AuthenticationError(APIStatusError):
    """401: the key is wrong, or belongs to the other region."""


class PermissionDeniedError(APIStatusError):
    """403: the model is not enabled for this account."""


class NotFoundError(APIStatusError):
    """404: unknown model or path."""


class RequestTimeoutError(APIStatusError):
    """408: the service timed out."""


class ConflictError(APIStatusError):
    """409."""


class RequestTooLargeError(APIStatusError):
    """413: the body is too large (the client splits the batch and retries)."""


class RateLimitError(APIStatusError):
    """429: rate limited; ``retry_after`` holds the server's hint in seconds, if any.

    ``limit`` says which limit was hit, from the provider's code (and message):
    ``"requests"`` (``Throttling.RateQuota``, requests per minute), ``"tokens"``
    (``Throttling.AllocationQuota``, tokens per minute) or ``"surge"`` (plain
    ``Throttling``: the rate rose too quickly, or the answer does not say).
    """

    @property
    def limit(self) -> RateLimit:
        return rate_limit_of(self.code, self.message)


class ServerError(APIStatusError):
    """5xx."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
}


def rate_limit_of(code: str | None, message: str) -> RateLimit:
    """Which limit a 429 names: by its code, else by words of its message."""
    kind = (code or "").strip().lower()
    if kind.endswith("ratequota"):
        return "requests"
    if kind.endswith("allocationquota"):
        return "tokens"
    if kind in ("", "throttling", "rate_limit_exceeded", "429"):
        words = message.lower()
        if "too quickly" in words or "surge" in words or "burst" in words:
            return "surge"
        if "token" in words or "tpm" in words:
            return "tokens"
        if "request" in words or "rpm" in words:
            return "requests"
    return "surge"


def status_error_class(status: int, code: str | None) -> type[APIStatusError]:
    """The most specific error class for an HTTP status and provider code."""
    if status == 400 and code == "DataInspectionFailed":
        return ContentModerationError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIStatusError)


def _short_indexes(indexes: tuple[int, ...]) -> str:
    if len(indexes) <= 8:
        return ", ".join(map(str, indexes))
    return f"{', '.join(map(str, indexes[:8]))}, ... ({len(indexes)} in all)"


@dataclass
class PartialResult:
    """What a call finished: ``vectors[i]`` is ``None`` for each part not embedded.

    A failed call's error carries one; ``embed(parts, on_invalid="skip")``
    returns one, with ``errors[i]`` saying why part ``i`` was refused. Pass it
    as ``embed(parts, resume=partial)`` with the same parts to send only the
    missing ones.
    """

    vectors: list[Vector | None]
    usage: Usage = field(default_factory=Usage)
    errors: dict[int, TongyiVisionError] = field(default_factory=dict)
    """Why each refused part has no vector (only parts skipped with ``on_invalid="skip"``)."""
    parts_digest: str | None = field(default=None, repr=False)
    """Which parts these results belong to: ``resume`` refuses a partial of other parts."""
    pieces: dict[int, dict[int, Vector]] = field(default_factory=dict, repr=False)
    """Vectors of the pieces of long texts still incomplete (``long_text="split"``), by the
    text's index and the piece's number: a resumed call does not send them again."""

    @property
    def missing(self) -> list[int]:
        """Indexes of the parts that have no vector yet."""
        return [i for i, v in enumerate(self.vectors) if v is None]

    @property
    def done(self) -> int:
        """How many parts have a vector."""
        return len(self.vectors) - len(self.missing)
