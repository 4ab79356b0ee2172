"""Every error leaves as JSON: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from reviewlab_common import tracing
from reviewlab_common.db import BucketClosed, CommitOutcomeUnknown, DatabaseUnavailable
from reviewlab_common.etcd import EtcdError
from reviewlab_common.shards import ShardMapMissing
from reviewlab_common.storage import StorageUnavailable
from starlette.exceptions import HTTPException as StarletteHTTPException

from reviewlab_web import methods

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client should see, with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def body(code: str, message: str, **extra: object) -> dict[str, object]:
    error = {"code": code, "message": message, **extra}
    # The request's trace: a user who reports the error can hand it over.
    trace_id = tracing.current_trace_id()
    if trace_id:
        error["trace_id"] = trace_id
    return {"error": error}


# Where FastAPI says a value came from: the first part of an error's location, never a name.
SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _describe(error: dict[str, Any]) -> str:
    """`field: what is wrong`, naming the field as the client sent it (a form field may be
    called `body`: only the leading source is dropped, not every part named like one)."""
    loc = [str(p) for p in error.get("loc", ())]
    if loc and loc[0] in SOURCES:
        loc = loc[1:]
    return f"{'.'.join(loc) or 'request'}: {error.get('msg')}"


def _takes_a_form(request: Request) -> bool:
    """Whether the matched route reads its body as form fields."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    body_params = getattr(dependant, "body_params", ())
    return any(isinstance(p.field_info, params.Form) for p in body_params)


def _not_a_form(request: Request) -> JSONResponse | None:
    """A 415 that says to send a form, when a form route got a body of another type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or content_type in FORM_TYPES or not _takes_a_form(request):
        return None
    message = (
        f"{request.url.path} takes a multipart form (multipart/form-data), not {content_type}: "
        "send each field as a form field, e.g. curl -F product_id=1 -F rating=5 "
        "-F body='Fits well' -F photo=@me.jpg"
    )
    return JSONResponse(body("use_multipart", message), status_code=415)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("loc", ("",))[0] == "body" for e in exc.errors()):
            hint = _not_a_form(request)
            if hint is not None:
                return hint
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

    @app.exception_handler(BucketClosed)
    async def bucket_moving(_: Request, exc: BucketClosed) -> JSONResponse:
        # A move's cutover outlasted the write's wait: it ran nothing, on any shard.
        return JSONResponse(
            body("bucket_moving", f"{exc}. Nothing was written; retry in a second."),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StorageUnavailable)
    async def storage_down(_: Request, exc: StorageUnavailable) -> JSONResponse:
        return JSONResponse(
            body("storage_unavailable", f"{exc}. Nothing was written; retry shortly."),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(EtcdError)
    @app.exception_handler(ShardMapMissing)
    async def shard_map_down(_: Request, exc: Exception) -> JSONResponse:
        # Which shard holds a product comes from etcd's shard map: without it nothing is read
        # or written, and the map comes back with etcd (or with provisioning).
        return JSONResponse(
            body("shard_map_unavailable", f"the shard map is unavailable ({exc}); retry shortly"),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def last_resort(request: Request, exc: Exception) -> JSONResponse:
        # Anything else still leaves as JSON; the traceback goes to this server's log.
        log.exception("%s %s failed", request.method, request.url.path)
        message = (
            f"the server failed on {request.method} {request.url.path} ({type(exc).__name__}); "
            "nothing about your request was wrong. A GET is safe to retry; retry a POST only "
            "with the same Idempotency-Key"
        )
        return JSONResponse(body("internal_error", message), status_code=500)
