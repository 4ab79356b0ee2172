"""Health and metrics: /healthz (alive), /readyz (reaches its dependencies), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reviewlab_web.deps import BackendsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(backends: BackendsDep) -> dict[str, str]:
    return {"status": "alive", "node": backends.node.name}


@router.get("/readyz")
def readyz(backends: BackendsDep) -> JSONResponse:
    problems = backends.problems()
    if problems:
        return JSONResponse(
            {
                "error": {
                    "code": "not_ready",
                    "message": "cannot reach: " + ", ".join(sorted(problems)),
                    "details": problems,
                }
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "node": backends.node.name})


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
