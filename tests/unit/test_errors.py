"""The API's error bodies: the field named as the client sent it, a hint for a JSON body."""

from __future__ import annotations

import warnings
from typing import Annotated

import pytest
from fastapi import FastAPI, Form
from reviewlab_web import errors

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about the httpx it drives
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.post("/form")
    def form(body: Annotated[str, Form(max_length=5)], rating: Annotated[int, Form()]) -> None:
        return None

    return TestClient(app)


@pytest.mark.parametrize(
    ("loc", "named"),
    [
        (("body", "body"), "body"),
        (("body", "rating"), "rating"),
        (("query", "limit"), "limit"),
        (("body",), "request"),
        (("body", "items", 0, "body"), "items.0.body"),
    ],
)
def test_only_the_leading_source_is_dropped(loc: tuple[object, ...], named: str) -> None:
    assert errors._describe({"loc": loc, "msg": "bad"}) == f"{named}: bad"


def test_a_form_field_called_body_is_named(client: TestClient) -> None:
    reply = client.post("/form", data={"rating": "1", "body": "too long"})
    assert reply.status_code == 422
    assert reply.json()["error"]["message"] == "body: String should have at most 5 characters"


def test_json_sent_to_a_form_gets_a_415_that_says_multipart(client: TestClient) -> None:
    reply = client.post("/form", json={"rating": 1, "body": "hi"})
    assert reply.status_code == 415
    error = reply.json()["error"]
    assert error["code"] == "use_multipart"
    assert "multipart/form-data" in error["message"] and "application/json" in error["message"]


@pytest.fixture(scope="module")
def failing() -> TestClient:
    """Routes that fail the way a dependency or a bug does, behind the same handlers."""
    from reviewlab_common.etcd import EtcdError
    from reviewlab_common.shards import BucketUnmapped, ShardMapMissing

    app = FastAPI()
    errors.install(app)
    faults = {
        "etcd": EtcdError("etcd at 127.0.0.40:2379 did not answer"),
        "missing": ShardMapMissing("no shard map in etcd"),
        "unmapped": BucketUnmapped("the shard map assigns bucket 9 to no shard"),
        "bug": KeyError(17),
    }

    @app.get("/fail/{kind}")
    def fail(kind: str) -> None:
        raise faults[kind]

    # A raised error must become the answer, as it does in uvicorn, not fail the test.
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("kind", ["etcd", "missing", "unmapped"])
def test_a_shard_map_fault_is_a_json_503_with_retry_after(failing: TestClient, kind: str) -> None:
    reply = failing.get(f"/fail/{kind}")
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "2"
    assert reply.json()["error"]["code"] == "shard_map_unavailable"


def test_anything_else_is_a_json_500(failing: TestClient) -> None:
    reply = failing.get("/fail/bug")
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error["code"] == "internal_error" and "KeyError" in error["message"]


def test_a_bucket_the_map_lacks_is_a_shard_map_fault_and_a_lookup_miss() -> None:
    from reviewlab_common.shards import BucketUnmapped, ShardMapMissing

    fault = BucketUnmapped("the shard map assigns bucket 9 to no shard")
    assert isinstance(fault, ShardMapMissing) and isinstance(fault, KeyError)
    assert str(fault) == "the shard map assigns bucket 9 to no shard"
