"""FastAPI dependencies, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from reviewlab_web.backends import Backends


async def get_backends(request: Request) -> Backends:
    # async: FastAPI runs a plain `def` dependency in the threadpool, a hop per request.
    backends: Backends = request.app.state.backends
    return backends


BackendsDep = Annotated[Backends, Depends(get_backends)]
