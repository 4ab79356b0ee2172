"""Bearer tokens: a user id and an expiry, signed with the lab's secret (HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

DEFAULT_TTL_S = 7 * 24 * 3600


class InvalidToken(ValueError):
    """The token is malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class Claims:
    user_id: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def issue(secret: str, user_id: int, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    now = time.time() if now is None else now
    payload = _b64(json.dumps({"sub": user_id, "exp": int(now) + ttl_s}).encode())
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: str, token: str, now: float | None = None) -> Claims:
    now = time.time() if now is None else now
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise InvalidToken("the bearer token is malformed: get one with `reviewlab token USER`")
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise InvalidToken("the bearer token's signature is not valid for this lab")
    try:
        data = json.loads(_unb64(payload))
        claims = Claims(user_id=int(data["sub"]), expires_at=int(data["exp"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidToken("the bearer token's payload is malformed") from exc
    if claims.expires_at < now:
        raise InvalidToken(
            "the bearer token has expired: get a new one with `reviewlab token USER`"
        )
    return claims
