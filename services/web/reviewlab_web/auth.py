"""Who is asking: the bearer token's user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from reviewlab_common import tokens

from reviewlab_web.deps import BackendsDep
from reviewlab_web.errors import ApiError

# Declared as HTTP bearer security, so the OpenAPI document has a security scheme and the docs
# page an Authorize button whose token Swagger UI sends. auto_error is off: a missing or
# malformed header gets the API's own JSON 401, which says how to get a token.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A lab token: `reviewlab token kim` prints one (paste it without `Bearer `).",
)


def current_user(
    backends: BackendsDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int:
    if credentials is None or not credentials.credentials.strip():
        if request.headers.get("authorization", "").strip():
            raise ApiError(401, "bad_token", "the Authorization header must be `Bearer <token>`")
        raise ApiError(
            401,
            "missing_token",
            "send `Authorization: Bearer <token>`; get a token with `reviewlab token kim`",
        )
    try:
        claims = tokens.verify(backends.secrets.token_secret, credentials.credentials.strip())
    except tokens.InvalidToken as exc:
        raise ApiError(401, "bad_token", str(exc)) from exc
    return claims.user_id


CurrentUserDep = Annotated[int, Depends(current_user)]
