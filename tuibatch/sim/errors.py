"""Error bodies, in the shape each endpoint family answers them.

One ``ApiError`` describes a failure; the route that answers decides its shape:

- **Interactions** (``/interactions``: create, get, cancel, delete) answer the shape the SDK's
  types declare (``google/genai/_gaos/errors/createinteraction.py`` ``CreateInteractionClientError
  Data`` / ``...ServerErrorData``, whose ``error`` is ``_gaos/types/interactions/error.py``
  ``Error``: ``code: str``, ``message: str``)::

      {"error": {"code": "too_many_requests", "message": "..."}}

  no ``status``, no ``details`` (so no QuotaFailure, no RetryInfo). String codes follow Google's
  Interactions error table (ai.google.dev/gemini-api/docs/api-errors: ``invalid_request``,
  ``failed_precondition``, ``authentication``, ``permission_denied``, ``not_found``,
  ``model_not_found``, ``rate_limit_exceeded``, ``quota_exceeded``, ...); 429 defaults to
  ``too_many_requests``, the code seen from the live service. Codes for 5xx are not documented;
  the simulator's choice is in ``INTERACTIONS_CODES`` and a rule may override it.
- **Models** (``generateContent``) answer Google-RPC bodies, which ``google.genai.errors.APIError``
  reads (``code`` int, ``status``, ``message``, ``details``)::

      {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
                 "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", ...}]}}

- ``html=True``: a non-JSON body (Google's front-end error page), whatever the endpoint.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

#: ``google.rpc.Code`` numbers: a ``google.rpc.Status`` inside a message (a batch line's
#: ``error``, an Operation's ``error``) carries these, not the HTTP code.
RPC_CODES: dict[str, int] = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip

#: Google's canonical status name for each HTTP code the simulator emits (RPC bodies).
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    416: "OUT_OF_RANGE",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: The Interactions string code for each HTTP code, unless the error names its own.
INTERACTIONS_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    408: "deadline_exceeded",
    409: "aborted",
    413: "invalid_request",
    416: "out_of_range",
    422: "invalid_request",
    429: "too_many_requests",
    499: "cancelled",
    500: "internal_error",
    501: "unimplemented",
    502: "unavailable",
    503: "unavailable",
    504: "deadline_exceeded",
}
#: RPC status -> Interactions code where the status says more than the HTTP code.
_CODE_FOR_STATUS = {"FAILED_PRECONDITION": "failed_precondition"}

QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
LOCALIZED_MESSAGE = "type.googleapis.com/google.rpc.LocalizedMessage"

#: Google's front-end error page (what a load balancer answers instead of JSON).
HTML_PAGE = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error {code} (Server Error)!!1</title>
  <p><b>{code}.</b> <ins>That\u2019s an error.</ins>
  <p>The server encountered a temporary error and could not complete your request.
  <p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>
"""

SHAPES = ("interactions", "rpc")


class ApiError(Exception):
    """A failure answered to the client; ``response(shape)`` renders it for one endpoint family."""

    def __init__(
        self,
        code: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        *,
        status: str | None = None,
        error_code: str | None = None,
        interactions_message: str | None = None,
        html: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.error_code = error_code or _CODE_FOR_STATUS.get(
            self.status, INTERACTIONS_CODES.get(code, "unknown")
        )
        self.interactions_message = interactions_message
        self.html = html

    def rpc_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def body(self) -> dict[str, Any]:
        """The Google-RPC body (admin routes and models endpoints)."""
        return self.rpc_body()

    def status_message(self) -> dict[str, Any]:
        """The ``google.rpc.Status`` a batch line or a failed job carries: gRPC code, message.

        No ``details``: the SDK types them ``list[str]`` (``JobError``), so Google's detail
        objects would not parse.
        """
        return {"code": RPC_CODES.get(self.status, RPC_CODES["UNKNOWN"]), "message": self.message}

    def interactions_body(self) -> dict[str, Any]:
        message = self.interactions_message or self.message
        return {"error": {"code": self.error_code, "message": message}}

    def response(self, shape: str) -> web.Response:
        if self.html:
            return web.Response(
                text=HTML_PAGE.format(code=self.code),
                status=self.code,
                content_type="text/html",
                headers=self.headers,
            )
        body = self.interactions_body() if shape == "interactions" else self.rpc_body()
        return web.json_response(body, status=self.code, headers=self.headers)


class Drop(Exception):
    """Close the connection without answering."""


def delay_text(seconds: float) -> str:
    """Google's duration form: fractional seconds with an ``s``."""
    return f"{max(seconds, 0.001):.3f}s"


def violation(
    quota_id: str, *, metric: str | None = None, value: int | None = None, model: str | None = None
) -> dict[str, Any]:
    """One QuotaFailure violation as Google lists it (metric, id, dimensions, value)."""
    out: dict[str, Any] = {}
    if metric is not None:
        out["quotaMetric"] = metric
    out["quotaId"] = quota_id
    if model is not None:
        out["quotaDimensions"] = {"location": "global", "model": model}
    if value is not None:
        out["quotaValue"] = str(value)
    return out


def quota_error(
    violations: list[dict[str, Any]],
    retry_delay: str | None,
    message: str,
    *,
    error_code: str = "too_many_requests",
    interactions_message: str | None = None,
) -> ApiError:
    """A 429 RESOURCE_EXHAUSTED; on Interactions routes only the code and message survive."""
    details: list[dict[str, Any]] = [{"@type": QUOTA_FAILURE, "violations": violations}]
    if retry_delay is not None:
        details.append({"@type": RETRY_INFO, "retryDelay": retry_delay})
    return ApiError(
        429,
        message,
        details,
        error_code=error_code,
        interactions_message=interactions_message
        or "You do not have enough quota to make this request. Please try again later.",
    )


def bad_key_error(code: int = 400) -> ApiError:
    """A wrong or expired key: 400 INVALID_ARGUMENT with ErrorInfo ``API_KEY_INVALID``."""
    message = "API key not valid. Please pass a valid API key."
    details: list[dict[str, Any]] = [
        {
            "@type": ERROR_INFO,
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {"@type": LOCALIZED_MESSAGE, "locale": "en-US", "message": message},
    ]
    return ApiError(code, message, details)


def missing_key_error() -> ApiError:
    """No key at all: 403 PERMISSION_DENIED ("unregistered callers")."""
    return ApiError(
        403,
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
    )


PRECONDITION_MESSAGES = {
    "location": "User location is not supported for the API use.",
    "billing": "Gemini API free tier is not available in your country."
    " Please enable billing on your project in Google AI Studio.",
}


def precondition_error(reason: str, message: str | None = None) -> ApiError:
    """400 FAILED_PRECONDITION: the project cannot use the API (location or billing)."""
    return ApiError(400, message or PRECONDITION_MESSAGES[reason], status="FAILED_PRECONDITION")
