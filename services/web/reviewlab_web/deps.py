"""FastAPI dependencies, as Annotated aliases: every route's `Depends` is named here.

(The bearer user, CurrentUserDep, lives beside its security scheme in auth.py, which reads
the backends through BackendsDep.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from reviewlab_web import consistency
from reviewlab_web.backends import Backends
from reviewlab_web.errors import ApiError


async def get_backends(request: Request) -> Backends:
    # async: FastAPI runs a plain `def` dependency in the threadpool, a hop per request.
    backends: Backends = request.app.state.backends
    return backends


BackendsDep = Annotated[Backends, Depends(get_backends)]
# Each shard's LSN of the reader's last write, from the token header or cookie.
ConsistencyDep = Annotated[dict[str, str], Depends(consistency.from_request)]


async def on_own_address(request: Request, backends: BackendsDep) -> None:
    """Refuse a request that reached this server through the load balancer."""
    vips = {lb.address for lb in backends.topology.of_kind("lb")}
    if request.client is not None and request.client.host in vips:
        raise ApiError(
            403,
            "node_only",
            f"{request.url.path} describes one web server and is not served through the vIP; "
            "read it at that server's own address from the lab's network",
        )


OwnAddress = Annotated[None, Depends(on_own_address)]
