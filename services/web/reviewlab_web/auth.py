"""Who is asking: the bearer token's user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from reviewlab_common import tokens

from reviewlab_web.deps import BackendsDep
from reviewlab_web.errors import ApiError


def current_user(
    backends: BackendsDep, authorization: Annotated[str | None, Header()] = None
) -> int:
    if not authorization:
        raise ApiError(
            401,
            "missing_token",
            "send `Authorization: Bearer <token>`; get a token with `reviewlab token kim`",
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "bad_token", "the Authorization header must be `Bearer <token>`")
    try:
        claims = tokens.verify(backends.secrets.token_secret, token.strip())
    except tokens.InvalidToken as exc:
        raise ApiError(401, "bad_token", str(exc)) from exc
    return claims.user_id


CurrentUserDep = Annotated[int, Depends(current_user)]
