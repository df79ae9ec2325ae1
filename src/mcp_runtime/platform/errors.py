"""One error envelope for every failure: `{"error": code, "message": ...}` with the right HTTP status."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mcp_runtime.store import StoreUnavailable

__all__ = ["STORE_RETRY_AFTER", "ApiError", "StoreUnavailable", "envelope", "install_error_handlers"]

log = logging.getLogger("mcp_runtime.platform")

STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "invalid_request", 429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


STORE_RETRY_AFTER = 2  # seconds a client should wait after a 503 store_unavailable


class _OutageLog:
    """One warning per `interval` while the store stays unavailable (not one per failed request)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval, self._last, self._count = interval, 0.0, 0
        self._lock = threading.Lock()

    def note(self, reason: str) -> None:
        with self._lock:
            self._count += 1
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            count, self._count, self._last = self._count, 0, now
        log.warning("the control-plane store is unavailable (%d requests answered 503 since the last note): %s",
                    count, reason)


_outage_log = _OutageLog()


class ApiError(Exception):
    """Raise from any handler or service to answer with the envelope."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.details = status, code, message, headers, details


def envelope(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
             details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def validation_message(errors: list[dict[str, Any]] | Any, prefix: str = "") -> str:
    """`spec.maxTrust: Input should be 'low', 'medium' or 'high'; ...` from pydantic errors."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        where = f"{prefix}{location}" if location else prefix.rstrip(".") or "body"
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts) or "invalid request"


def invalid(exc: ValidationError, prefix: str = "") -> ApiError:
    errors = exc.errors(include_url=False, include_input=False)
    return ApiError(422, "invalid_request", validation_message(errors, prefix), details=_plain(errors))


def _plain(errors: Any) -> Any:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
            for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return envelope(exc.status, exc.code, exc.message, headers=exc.headers, details=exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return envelope(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            return envelope(400, "malformed_json", f"request body is not valid JSON: {detail.get('msg')}")
        return envelope(422, "invalid_request", validation_message(errors), details=_plain(errors))

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        _outage_log.note(str(exc))
        return envelope(503, "store_unavailable",
                        f"the platform's database cannot be reached right now ({exc}); "
                        f"try again in {STORE_RETRY_AFTER} seconds", headers={"Retry-After": str(STORE_RETRY_AFTER)})

    @app.exception_handler(ValidationError)
    async def _model_error(_: Request, exc: ValidationError) -> JSONResponse:
        # a resource assembled by a service (e.g. a deploy's MCPServer) failed the models' rules
        from mcp_runtime.resources import describe_validation_error

        return envelope(422, "invalid_request", describe_validation_error(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return envelope(500, "internal_error", "the platform API failed to handle the request; see its log")
