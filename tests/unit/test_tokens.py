"""Bearer tokens: signed, expiring, refused when forged or malformed."""

from __future__ import annotations

import pytest
from reviewlab_common import tokens

SECRET = "unit-test-secret"


def test_a_token_carries_its_user() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=60, now=1000)
    claims = tokens.verify(SECRET, token, now=1010)
    assert claims == tokens.Claims(user_id=42, expires_at=1060)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = tokens.issue("another-secret", 42)
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, token)


def test_a_tampered_payload_is_refused() -> None:
    token = tokens.issue(SECRET, 42)
    other = tokens.issue(SECRET, 1)
    forged = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(SECRET, forged)


def test_an_expired_token_is_refused() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=60, now=1000)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(SECRET, token, now=1061)


@pytest.mark.parametrize("token", ["", "nodot", ".", "abc.", ".abc"])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(tokens.InvalidToken, match=r"malformed|signature"):
        tokens.verify(SECRET, token)
