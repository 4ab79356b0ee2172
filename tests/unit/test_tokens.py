"""Bearer tokens (JSON Web Tokens): signed, expiring, refused when forged, expired, future-dated,
from another key, unsigned (`alg: none`), of another algorithm, or in the old format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from reviewlab_common import tokens

SECRET = "unit-test-secret-of-at-least-32-bytes"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
    )


def test_a_token_is_a_jwt_with_sub_iat_exp_and_a_key_id() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=60, now=1000)
    header, payload = unverified(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": tokens.key_id(SECRET)}
    assert payload == {"sub": "42", "iat": 1000, "exp": 1060}
    assert tokens.verify(SECRET, token, now=1010) == tokens.Claims(42, 1060, 1000)


def test_a_token_is_valid_until_its_expiry_second() -> None:
    token = tokens.issue(SECRET, 7, ttl_s=60, now=1000)
    assert tokens.verify(SECRET, token, now=1060).user_id == 7


def test_an_expired_token_is_refused_with_how_to_get_a_new_one() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=60, now=1000)
    with pytest.raises(tokens.InvalidToken, match=r"expired: get a new one with `reviewlab token"):
        tokens.verify(SECRET, token, now=1061)


def test_a_future_dated_token_is_refused() -> None:
    token = tokens.issue(SECRET, 42, ttl_s=3600, now=10_000)
    with pytest.raises(tokens.InvalidToken, match="issued in the future"):
        tokens.verify(SECRET, token, now=10_000 - tokens.CLOCK_SKEW_S - 1)
    assert tokens.verify(SECRET, token, now=10_000 - tokens.CLOCK_SKEW_S).user_id == 42


def test_a_token_signed_with_another_key_is_refused() -> None:
    other = "another-lab-secret-of-at-least-32-bytes"
    with pytest.raises(tokens.InvalidToken, match="signed with another key"):
        tokens.verify(SECRET, tokens.issue(other, 42))


def test_a_token_with_this_key_id_but_another_key_is_refused() -> None:
    claims = {"sub": "42", "iat": 1000, "exp": 9_999_999_999}
    forged = jwt.encode(
        claims, "guessed-key-of-at-least-32-bytes-long", headers={"kid": tokens.key_id(SECRET)}
    )
    with pytest.raises(tokens.InvalidToken, match="signature is not valid"):
        tokens.verify(SECRET, forged)


def test_an_unsigned_token_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": tokens.key_id(SECRET)}).encode())
    payload = b64(json.dumps({"sub": "1", "iat": 1000, "exp": 9_999_999_999}).encode())
    for unsigned in (f"{header}.{payload}.", f"{header}.{payload}.c2ln"):
        with pytest.raises(tokens.InvalidToken, match="algorithm 'none' is not accepted"):
            tokens.verify(SECRET, unsigned)


def test_another_algorithm_in_the_header_is_refused() -> None:
    """Algorithm confusion: HS512 keyed with the same secret is still not accepted."""
    claims = {"sub": "1", "iat": 1000, "exp": 9_999_999_999}
    other = jwt.encode(claims, SECRET, algorithm="HS512", headers={"kid": tokens.key_id(SECRET)})
    with pytest.raises(tokens.InvalidToken, match="algorithm 'HS512' is not accepted"):
        tokens.verify(SECRET, other)


def test_a_tampered_payload_is_refused() -> None:
    token = tokens.issue(SECRET, 42)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "1"
    tampered = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(tokens.InvalidToken, match="signature is not valid"):
        tokens.verify(SECRET, tampered)


def test_a_forged_signature_is_refused() -> None:
    header, payload, signature = tokens.issue(SECRET, 42).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(tokens.InvalidToken, match="signature is not valid"):
        tokens.verify(SECRET, f"{header}.{payload}.{flipped}")


def test_an_old_format_token_is_told_to_get_a_new_one() -> None:
    """The lab's tokens before JWT: base64 JSON, a dot, an HMAC."""
    body = b64(json.dumps({"sub": 1, "exp": 9_999_999_999}).encode())
    mac = b64(hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest())
    with pytest.raises(tokens.InvalidToken, match=r"old format .*`reviewlab token USER`"):
        tokens.verify(SECRET, f"{body}.{mac}")


@pytest.mark.parametrize("token", ["", "nodots", "..", "a.b.c", "abc..def"])
def test_a_token_that_is_not_a_jwt_is_malformed(token: str) -> None:
    with pytest.raises(tokens.InvalidToken, match="malformed"):
        tokens.verify(SECRET, token)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "1", "iat": 1000},
        {"sub": "1", "exp": 2000},
        {"iat": 1000, "exp": 2000},
        {"sub": "kim", "iat": 1000, "exp": 2000},
        {"sub": 1, "iat": 1000, "exp": 2000},
    ],
)
def test_a_signed_token_with_missing_or_bad_claims_is_refused(claims: dict[str, object]) -> None:
    token = jwt.encode(claims, SECRET, headers={"kid": tokens.key_id(SECRET)})
    with pytest.raises(tokens.InvalidToken, match="claims are malformed"):
        tokens.verify(SECRET, token, now=1500)


def test_a_lifetime_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        tokens.issue(SECRET, 1, ttl_s=0)
