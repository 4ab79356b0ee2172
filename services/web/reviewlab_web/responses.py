"""JSON replies built once from the models the service layer made.

A route that returns a model makes FastAPI validate it again against `response_model` (in
the threadpool, for a plain `def` route) and then serialise it. The service already built
these models from database rows, so a route returns `json_reply(model)` instead: pydantic's
core writes the JSON bytes in one step. `response_model` stays on the route for the OpenAPI
document.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def json_reply(
    model: BaseModel, headers_from: Response | None = None, status_code: int = 200
) -> Response:
    """MODEL as JSON, with the headers a route set on its injected HEADERS_FROM response."""
    reply = Response(
        model.__pydantic_serializer__.to_json(model), status_code=status_code, media_type=JSON
    )
    if headers_from is not None:
        reply.headers.raw.extend(headers_from.headers.raw)
    return reply
