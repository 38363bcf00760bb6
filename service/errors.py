"""Errors as data: one exception type per failure, and one handler per API shape.

The native API's body: ``{"error": {"code": ..., "message": ..., "details": [{"loc": ...,
"msg": ...}]}}``; the Open Inference Protocol's (``/v2``, whose clients read ``error`` as
a string): ``{"error": message, "code": ..., "details": [...]}``. Each API's blueprint
registers the handlers of its own shape (``register``). What no blueprint owns, an
unknown route or method and a request gunicorn could not parse, gets the shape of the
API whose prefix the path is under (``shape_for_path``, the one path rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import orjson
from flask import Blueprint, Flask, Response, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("service.errors")


@dataclass(frozen=True)
class Detail:
    loc: str
    msg: str


class ApiError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    headers: ClassVar[tuple[tuple[str, str], ...]] = ()  # sent with the error's response

    def __init__(self, message: str, details: Iterable[Detail] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


Shape = Callable[[ApiError], dict[str, Any]]


def native_body(error: ApiError) -> dict[str, Any]:
    details = [asdict(d) for d in error.details]
    return {"error": {"code": error.code, "message": error.message, "details": details}}


def inference_protocol_body(error: ApiError) -> dict[str, Any]:
    return {"error": error.message, "code": error.code, "details": [asdict(d) for d in error.details]}


INFERENCE_PROTOCOL_PREFIX = "/v2"  # the /v2 blueprint's url_prefix (service/v2_api.py)


def shape_for_path(path: str) -> Shape:
    """The shape for an error that no route raised: the API whose prefix ``path`` is under."""
    prefix = INFERENCE_PROTOCOL_PREFIX
    return inference_protocol_body if path == prefix or path.startswith(prefix + "/") else native_body


class MalformedJson(ApiError):
    status, code = 400, "malformed_json"


class NotFound(ApiError):
    status, code = 404, "not_found"


class ModelNotFound(ApiError):
    status, code = 404, "model_not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class RequestTimeout(ApiError):
    status, code = 408, "request_timeout"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class TooManyBeats(ApiError):
    status, code = 413, "too_many_beats"


# RFC 6750: no error code when credentials are missing; "invalid_token" when they are wrong
_REALM = 'Bearer realm="ecg-anomaly"'


class MissingApiKey(ApiError):
    status, code = 401, "missing_api_key"
    headers = (("WWW-Authenticate", _REALM),)
    reason: ClassVar[str] = "missing"  # the ecg_auth_failures_total label


class InvalidApiKey(ApiError):
    status, code = 401, "invalid_api_key"
    headers = (("WWW-Authenticate", f'{_REALM}, error="invalid_token"'),)
    reason: ClassVar[str] = "invalid"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(ApiError):
    status, code = 422, "invalid_input"


class InternalError(ApiError):
    status, code = 500, "internal_error"


class ModelNotReady(ApiError):
    status, code = 503, "model_not_ready"


class ShuttingDown(ApiError):
    status, code = 503, "shutting_down"


class BadRequest(ApiError):
    status, code = 400, "bad_request"


# What HTTP parsing refuses before the app sees a request (service/worker.py answers them)
class MalformedHttp(ApiError):
    status, code = 400, "malformed_http"


class UriTooLong(ApiError):
    status, code = 414, "uri_too_long"


class ExpectationFailed(ApiError):
    status, code = 417, "expectation_failed"


class HeaderFieldsTooLarge(ApiError):
    status, code = 431, "header_fields_too_large"


class UnsupportedTransferCoding(ApiError):
    status, code = 501, "unsupported_transfer_coding"


_FROM_HTTP: dict[int, type[ApiError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def render(error: ApiError, shape: Shape) -> Response:
    return Response(
        orjson.dumps(shape(error)), error.status, headers=list(error.headers), mimetype="application/json"
    )


def location(parts: tuple, prefix: str = "") -> str:
    """pydantic's ``("beats", 3, 17)`` as ``beats[3][17]``."""
    text = prefix
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def from_validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """A pydantic failure as a 400 (not JSON at all) or a 422 naming every location."""
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return MalformedJson(
            "request body is not valid JSON",
            [Detail("body", e["msg"]) for e in errors if e["type"] == "json_invalid"],
        )
    details = [Detail(location(e["loc"], prefix), e["msg"]) for e in errors[:50]]
    return InvalidInput(f"{exc.error_count()} invalid field(s); first at {details[0].loc}", details)


def from_http(exc: HTTPException) -> ApiError:
    """Werkzeug's own errors (unknown route, wrong method, body over the limit)."""
    if exc.code == 404:
        return NotFound("no such route; see /openapi.json")
    if exc.code == 405:
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
        return MethodNotAllowed(f"method not allowed; allowed: {allowed}")
    if exc.code == 413:
        return PayloadTooLarge("request body exceeds the size limit")
    code = exc.code or 500
    kind = _FROM_HTTP.get(code, BadRequest if 400 <= code < 500 else InternalError)
    return kind(exc.description or kind.code)


def register(target: Flask | Blueprint, shape: Shape) -> None:
    """The handlers of one API shape, for what ``target``'s routes raise: its own errors,
    werkzeug's (a body over the limit, a bad form) and bugs."""

    def api_error(exc: ApiError) -> Response:
        return render(exc, shape)

    def http_error(exc: HTTPException) -> Response:
        response = render(from_http(exc), shape)
        allowed = getattr(exc, "valid_methods", None)  # werkzeug's MethodNotAllowed has them
        if exc.code == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    def bug(exc: Exception) -> Response:
        # Our bug, not the client's: log the traceback, tell the client nothing internal.
        log.exception("unhandled error")
        return render(InternalError("internal server error"), shape)

    target.register_error_handler(ApiError, api_error)
    target.register_error_handler(HTTPException, http_error)
    target.register_error_handler(Exception, bug)


def init_app(app: Flask) -> None:
    """The app's own handlers: for what no blueprint raised (an unknown route or method,
    a failing request hook), in the shape of the API the path is under."""
    register(app, lambda error: shape_for_path(request.path)(error))
