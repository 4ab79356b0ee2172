"""Bearer tokens: signed, expiring, refused when forged, expired or malformed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from reviewlab_common import tokens

SECRET = "unit-test-secret"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes, secret: str = SECRET) -> str:
    """A token whose signature is valid for SECRET, whatever its payload says."""
    body = b64(payload)
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{b64(mac)}"


def test_a_token_carries_its_user_and_expiry() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=60, now=1000)
    assert tokens.verify(SECRET, token, now=1010) == tokens.Claims(user_id=42, expires_at=1060)


def test_a_token_is_valid_until_its_expiry_second() -> None:
    token = tokens.issue(SECRET, 7, ttl_s=60, now=1000)
    assert tokens.verify(SECRET, token, now=1060).user_id == 7


def test_an_expired_token_is_refused() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=60, now=1000)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(SECRET, token, now=1061)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = tokens.issue("another-secret", 42)
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, token)


def test_a_tampered_payload_is_refused() -> None:
    token = tokens.issue(SECRET, 42)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    payload["sub"] = 1
    forged = b64(json.dumps(payload).encode()) + "." + token.split(".")[1]
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, forged)


def test_a_forged_signature_is_refused() -> None:
    token = tokens.issue(SECRET, 42)
    payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, f"{payload}.{flipped}")


@pytest.mark.parametrize("token", ["", "nodot", ".", "abc.", ".abc"])
def test_a_token_without_two_parts_is_malformed(token: str) -> None:
    with pytest.raises(tokens.InvalidToken, match="malformed"):
        tokens.verify(SECRET, token)


@pytest.mark.parametrize(
    "payload", [b"not json", b"[]", b'{"sub": 1}', b'{"exp": 2000}', b'{"sub": "x", "exp": 1}']
)
def test_a_signed_but_malformed_payload_is_refused(payload: bytes) -> None:
    with pytest.raises(tokens.InvalidToken, match="payload is malformed"):
        tokens.verify(SECRET, signed(payload), now=1000)
