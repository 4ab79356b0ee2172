"""Every error leaves as JSON: {"error": {"code", "message"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from reviewlab_common.db import CommitOutcomeUnknown, DatabaseUnavailable
from reviewlab_common.storage import StorageUnavailable
from starlette.exceptions import HTTPException as StarletteHTTPException

from reviewlab_web import methods


class ApiError(Exception):
    """An error the client should see, with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{loc or 'request'}: {error.get('msg')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe(e) for e in exc.errors()]
        return JSONResponse(
            body("invalid_request", "; ".join(problems), fields=problems), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        message = str(exc.detail)
        if exc.status_code == 405:
            allowed = methods.allowed(request.app, request.scope)
            headers["Allow"] = ", ".join(allowed)
            message = (
                f"{request.method} is not allowed on {request.url.path}; use {' or '.join(allowed)}"
            )
        return JSONResponse(
            body(f"http_{exc.status_code}", message),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(DatabaseUnavailable)
    async def database_down(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        if isinstance(exc, CommitOutcomeUnknown):
            # The connection died during COMMIT: the write may or may not be kept.
            outcome = (
                "The write may have been kept: read it back before you post again, "
                "or retry with the same Idempotency-Key"
            )
        else:
            outcome = "Nothing was written; retry shortly"
        return JSONResponse(
            body("database_unavailable", f"{exc}. {outcome}."),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(StorageUnavailable)
    async def storage_down(_: Request, exc: StorageUnavailable) -> JSONResponse:
        return JSONResponse(
            body("storage_unavailable", f"{exc}. Nothing was written; retry shortly."),
            status_code=503,
            headers={"Retry-After": "2"},
        )
