"""Health and metrics: /healthz (alive), /readyz (serves its requests), /metrics.

/readyz is 503 only when a dependency every request needs is unreachable (the catalog, a
shard, the shard map); without Redis or MinIO the server still takes reviews and reads, so it
is ready and says it is degraded. It also names the read replicas its router has ejected.

/healthz is public. /readyz and /metrics describe one web server and name internal
dependencies, so they answer on the server's own address only: a request that came through
the vIP (the load balancer connects from its own address, in both layers) gets 403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reviewlab_web.deps import BackendsDep, OwnAddress

router = APIRouter(tags=["health"])

NODE_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"description": "asked through the vIP: read it at the web server's own address"}
}


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    # async and without dependencies: it does no I/O, so it runs on the event loop, and no
    # dependency is solved for it (a hot path: the vIP and every probe ask it).
    backends = request.app.state.backends
    # The shard map's revision: a move waits until every web server holds the new one.
    return {
        "status": "alive",
        "node": backends.node.name,
        "shard_map_revision": str(backends.shard_map.revision),
    }


@router.get(
    "/readyz",
    responses={
        **NODE_ONLY,
        200: {"description": "ready, or degraded: serving, with a feature off (the body says)"},
        503: {"description": "a dependency every request needs is unreachable; the body names it"},
    },
)
def readyz(backends: BackendsDep, _: OwnAddress) -> JSONResponse:
    check = backends.readiness()
    if check.missing:
        return JSONResponse(
            {
                "error": {
                    "code": "not_ready",
                    "message": "cannot reach: " + ", ".join(sorted(check.missing)),
                    "details": check.missing,
                }
            },
            status_code=503,
        )
    body: dict[str, Any] = {
        "status": "degraded" if check.degraded else "ready",
        "node": backends.node.name,
        "out_of_rotation": check.out_of_rotation,
    }
    if check.degraded:
        body["degraded"] = check.degraded
    return JSONResponse(body)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **NODE_ONLY,
        200: {
            "description": "the Prometheus text exposition format, not JSON",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
    },
)
def metrics(backends: BackendsDep, _: OwnAddress) -> Response:
    return Response(
        generate_latest() + out_of_rotation_metric(backends), media_type=CONTENT_TYPE_LATEST
    )


OUT_OF_ROTATION = "web_replica_out_of_rotation"


def out_of_rotation_metric(backends: BackendsDep) -> bytes:
    """One gauge line per read replica this server's router has ejected right now."""
    lines = [
        f"# HELP {OUT_OF_ROTATION} Read replicas the router has ejected (1 while out)",
        f"# TYPE {OUT_OF_ROTATION} gauge",
    ]
    for cluster, router in backends.routers().items():
        for member in sorted(router.ejector.ejected()):
            lines.append(f'{OUT_OF_ROTATION}{{cluster="{cluster}",member="{member}"}} 1')
    return ("\n".join(lines) + "\n").encode()
