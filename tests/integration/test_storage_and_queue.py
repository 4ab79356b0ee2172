"""MinIO with the lab's credentials, its private bucket, and Redis' durability."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from reviewlab_common import queue, storage
from reviewlab_common.topology import Topology
from reviewlab_lab import ready

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes


@pytest.fixture()
def s3(topology: Topology) -> Any:
    return storage.client(topology)


@pytest.fixture()
def scratch_key(s3: Any) -> Iterator[str]:
    """A fresh key under scratch/, deleted afterwards whatever the test did."""
    key = f"scratch/{uuid.uuid4().hex}.txt"
    yield key
    s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)


def anonymous_get(url: str, *, source: str) -> httpx.Response:
    """An unsigned GET that leaves from SOURCE (which decides what the bucket policy allows)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=5) as http:
        return http.get(url)


def test_minio_serves_put_get_and_delete_with_the_lab_credentials(
    s3: Any, scratch_key: str
) -> None:
    body = f"hello lab {uuid.uuid4().hex}".encode()
    assert not storage.exists(s3, scratch_key)
    storage.put_object(s3, scratch_key, body, content_type="text/plain", immutable=False)
    assert storage.exists(s3, scratch_key)
    assert storage.get_object(s3, scratch_key) == body
    head = s3.head_object(Bucket=storage.MEDIA_BUCKET, Key=scratch_key)
    assert head["ContentType"] == "text/plain"
    assert head["ContentLength"] == len(body)
    listed = s3.list_objects_v2(Bucket=storage.MEDIA_BUCKET, Prefix="scratch/")
    assert scratch_key in {item["Key"] for item in listed.get("Contents", [])}

    s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=scratch_key)
    assert not storage.exists(s3, scratch_key)
    with pytest.raises(storage.StorageUnavailable, match=scratch_key):
        storage.get_object(s3, scratch_key)


def test_wrong_credentials_are_refused(topology: Topology, s3: Any) -> None:
    impostor = boto3.client(
        "s3",
        endpoint_url=topology.one("minio").url,
        aws_access_key_id="not-the-lab",
        aws_secret_access_key=uuid.uuid4().hex,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    with pytest.raises(ClientError) as refused:
        impostor.list_objects_v2(Bucket=storage.MEDIA_BUCKET)
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    # The real credentials still work: the refusal came from the key, not from MinIO being down.
    assert (
        s3.list_objects_v2(Bucket=storage.MEDIA_BUCKET, MaxKeys=1)["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 200
    )


def test_private_objects_refuse_anonymous_reads_but_the_cdn_serves_them(
    topology: Topology, nodes: Nodes, s3: Any, scratch_key: str, cdn: str
) -> None:
    body = f"shield only {uuid.uuid4().hex}".encode()
    storage.put_object(s3, scratch_key, body, content_type="text/plain")
    origin = f"{topology.one('minio').url}/{storage.MEDIA_BUCKET}"

    # The machine itself is outside the policy: only the origin shield's address may read.
    outside = topology.lab.runtime.machine_address
    anonymous = anonymous_get(f"{origin}/{scratch_key}", source=outside)
    assert anonymous.status_code == 403
    assert body not in anonymous.content
    listing = anonymous_get(f"{origin}?list-type=2", source=outside)
    assert listing.status_code == 403
    assert scratch_key not in listing.text

    # The same unsigned GET from the shield's own address is allowed: the policy is the reason.
    (from_shield,) = nodes.get_from("shield", f"{origin}/{scratch_key}")
    assert from_shield.status == 200
    assert from_shield.content == body
    # An edge pulls through the shield, never from MinIO itself.
    (from_edge,) = nodes.get_from(topology.services["cdn"], f"{origin}/{scratch_key}")
    assert from_edge.status == 403

    through_edge = httpx.get(f"{cdn}/media/{scratch_key}", timeout=5)
    assert through_edge.status_code == 200
    assert through_edge.content == body


def redis_ready(topology: Topology) -> bool:
    return ready.probe(topology, topology.one("redis")).ready


def test_redis_is_configured_to_fsync_every_write(topology: Topology) -> None:
    config = queue.connect(topology, "admin").config_get("append*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "always"
    # No RDB snapshots: after a restart, the append-only file is the only copy of the data.
    assert queue.connect(topology, "admin").config_get("save")["save"] == ""


def test_redis_keeps_a_key_across_its_restart(topology: Topology, nodes: Nodes) -> None:
    key = f"scratch-durability-{uuid.uuid4().hex}"
    value = uuid.uuid4().hex
    before = nodes.pid("redis")
    assert before
    run_before = queue.connect(topology, "admin").info("server")["run_id"]
    assert queue.connect(topology, "admin").set(key, value) is True
    try:
        nodes.runtime.restart("redis")
        after = nodes.pid("redis")
        assert after != before, "the runtime did not start a new Redis process"
        eventually(lambda: redis_ready(topology), within=30, what="Redis ready after restart")
        client = queue.connect(topology, "admin")
        # A new process: the key can only have come back from the append-only file.
        assert client.info("server")["run_id"] != run_before
        assert client.get(key) == value
    finally:
        if nodes.state("redis") != "running":
            nodes.start("redis")
        eventually(
            lambda: queue.connect(topology, "admin").delete(key) in (0, 1),
            within=30,
            what="cleanup",
        )
    assert queue.connect(topology, "admin").exists(key) == 0
