"""Error answers of both dialects, raised as :class:`ApiFault` anywhere in a request."""

from __future__ import annotations

from typing import Any

from ..wire.models import NativeError, OpenAIError, OpenAIErrorDetail

# A native code for each status the emulator answers with (contract.md, "Errors").
DEFAULT_CODES: dict[int, str] = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    408: "RequestTimeOut",
    413: "BadRequest.TooLarge",
    429: "Throttling.RateQuota",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

# The OpenAI ``error.type`` an OpenAI-compatible gateway puts beside the native code.
_OPENAI_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiFault(Exception):
    """An error answer: HTTP ``status``, native ``code``, a message, and the offending ``param``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or DEFAULT_CODES.get(status, "InternalError")
        self.param = param
        self.retry_after = retry_after


def bad_request(message: str, *, param: str | None = None, empty: bool = False) -> ApiFault:
    """400 ``InvalidParameter`` (or ``BadRequest.EmptyInput`` when ``empty``)."""
    code = "BadRequest.EmptyInput" if empty else "InvalidParameter"
    return ApiFault(400, message, code=code, param=param)


def error_body(dialect: str, fault: ApiFault, request_id: str) -> dict[str, Any]:
    """The JSON body of ``fault`` in ``dialect`` (``openai`` or ``dashscope``)."""
    if dialect == "openai":
        detail = OpenAIErrorDetail(
            message=fault.message,
            type=_OPENAI_TYPES.get(fault.status, "server_error"),
            code=fault.code,
            param=fault.param,
        )
        return OpenAIError(error=detail).model_dump()
    return NativeError(code=fault.code, message=fault.message, request_id=request_id).model_dump()
