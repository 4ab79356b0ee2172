"""The API's 401s for bearer tokens it must refuse: each says how to get a new one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from reviewlab_common import secrets as lab_secrets
from reviewlab_common import tokens
from reviewlab_common.topology import Topology

from tests.integration.shop import KIM, assert_error, auth


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused_tokens(secret: str) -> dict[str, str]:
    old_body = b64(json.dumps({"sub": KIM, "exp": int(time.time()) + 3600}).encode())
    old_mac = b64(hmac.new(secret.encode(), old_body.encode(), hashlib.sha256).digest())
    none_header = b64(json.dumps({"alg": "none", "kid": tokens.key_id(secret)}).encode())
    claims = {"sub": str(KIM), "iat": int(time.time()), "exp": int(time.time()) + 3600}
    return {
        "old format": f"{old_body}.{old_mac}",
        "alg none": f"{none_header}.{b64(json.dumps(claims).encode())}.",
        "expired": tokens.issue(secret, KIM, ttl_s=60, now=time.time() - 3600),
        "future": tokens.issue(secret, KIM, now=time.time() + 3600),
        "another key": tokens.issue("another-lab-secret-of-at-least-32-bytes", KIM),
    }


@pytest.mark.parametrize("kind", ["old format", "alg none", "expired", "future", "another key"])
def test_a_refused_token_is_a_401_that_says_how_to_get_a_new_one(
    topology: Topology, client: httpx.Client, kind: str
) -> None:
    token = refused_tokens(lab_secrets.load(topology).token_secret)[kind]
    reply = client.delete("/api/reviews/1", headers=auth(token))
    error = assert_error(reply, 401)
    assert error["code"] == "bad_token", error
    assert "reviewlab token" in error["message"], error
