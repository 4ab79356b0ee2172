"""Bearer tokens: JSON Web Tokens (PyJWT), HMAC-SHA256 with the lab's secret.

Claims: `sub` (the user id, a string as RFC 7519 asks), `iat` and `exp`; the header names the
key (`kid`, derived from the secret), so a token from another lab, or signed before the secret
was rotated, is told apart from a forged one. Verification accepts HS256 only: `alg: none` and
any other algorithm in a token's header are refused, whatever the header says.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

DEFAULT_TTL_S: Final = 7 * 24 * 3600
ALGORITHM: Final = "HS256"
# Clocks on one machine agree; a token issued further ahead than this is refused.
CLOCK_SKEW_S: Final = 30
GET_ONE = "get a new one with `reviewlab token USER`"


class InvalidToken(ValueError):
    """The token is malformed, forged, expired or from another key; the message says which."""


@dataclass(frozen=True)
class Claims:
    user_id: int
    expires_at: int
    issued_at: int


def key_id(secret: str) -> str:
    """Names the signing key without revealing it: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def issue(secret: str, user_id: int, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    if ttl_s <= 0:
        raise ValueError(f"a token's lifetime must be positive, not {ttl_s} s")
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(user_id), "iat": issued, "exp": issued + ttl_s}
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": key_id(secret)})


def _header(token: str) -> dict[str, Any]:
    if token.count(".") == 1:
        raise InvalidToken(
            "the bearer token is in the lab's old format (before JSON Web Tokens): " + GET_ONE
        )
    try:
        return jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise InvalidToken(f"the bearer token is malformed: {GET_ONE}") from exc


def verify(secret: str, token: str, now: float | None = None) -> Claims:
    now = time.time() if now is None else now
    header = _header(token)
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(
            f"the bearer token's algorithm {header.get('alg')!r} is not accepted "
            f"(only {ALGORITHM}): {GET_ONE}"
        )
    if header.get("kid") != key_id(secret):
        raise InvalidToken(
            f"the bearer token was signed with another key (kid {header.get('kid')!r}), "
            f"not this lab's: {GET_ONE}"
        )
    try:
        # The clock checks are below, against NOW (so tests can pass a time); PyJWT checks the
        # signature with the one algorithm accepted and that every claim is present.
        data = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "iat", "exp"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("the bearer token's signature is not valid for this lab") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"the bearer token's claims are malformed ({exc}): {GET_ONE}") from exc
    try:
        claims = Claims(
            user_id=int(data["sub"]), expires_at=int(data["exp"]), issued_at=int(data["iat"])
        )
    except (ValueError, TypeError) as exc:
        raise InvalidToken(f"the bearer token's claims are malformed: {GET_ONE}") from exc
    if claims.expires_at < now:
        raise InvalidToken(f"the bearer token has expired: {GET_ONE}")
    if claims.issued_at > now + CLOCK_SKEW_S:
        raise InvalidToken(f"the bearer token is issued in the future: {GET_ONE}")
    return claims
