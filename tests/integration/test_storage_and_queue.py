"""MinIO with the lab's credentials, its private bucket, and Redis' durability."""

from __future__ import annotations

import uuid

import httpx
import pytest
from reviewlab_common import queue, storage
from reviewlab_common.topology import Topology
from reviewlab_lab import ready
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.procs import Supervisor

from tests.integration.conftest import eventually


@pytest.fixture()
def scratch_key(topology: Topology):  # type: ignore[no-untyped-def]
    key = f"scratch/{uuid.uuid4().hex}.txt"
    yield key
    storage.client(topology).delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)


def test_minio_serves_s3_calls_with_the_lab_credentials(
    topology: Topology, scratch_key: str
) -> None:
    s3 = storage.client(topology)
    storage.put_object(s3, scratch_key, b"hello lab", content_type="text/plain", immutable=False)
    assert storage.get_object(s3, scratch_key) == b"hello lab"
    assert storage.exists(s3, scratch_key)
    listed = s3.list_objects_v2(Bucket=storage.MEDIA_BUCKET, Prefix="scratch/")
    assert scratch_key in {item["Key"] for item in listed.get("Contents", [])}


def test_private_objects_refuse_anonymous_reads_but_the_edge_serves_them(
    topology: Topology, scratch_key: str, cdn: str
) -> None:
    storage.put_object(
        storage.client(topology), scratch_key, b"edge only", content_type="text/plain"
    )
    minio = topology.one("minio")
    anonymous = httpx.get(f"{minio.url}/{storage.MEDIA_BUCKET}/{scratch_key}", timeout=5)
    assert anonymous.status_code == 403
    assert b"edge only" not in anonymous.content
    listing = httpx.get(f"{minio.url}/{storage.MEDIA_BUCKET}?list-type=2", timeout=5)
    assert listing.status_code == 403
    through_edge = httpx.get(f"{cdn}/media/{scratch_key}", timeout=5)
    assert through_edge.status_code == 200
    assert through_edge.content == b"edge only"


def test_redis_keeps_a_key_across_its_restart(topology: Topology) -> None:
    key = f"durability-{uuid.uuid4().hex}"
    client = queue.connect(topology)
    client.set(key, "kept")
    supervisor = Supervisor(topology, LabPaths.of(topology))
    before = supervisor.processes()["redis"].pid
    try:
        supervisor.restart_node("redis")
        assert supervisor.processes()["redis"].pid != before
        node = topology.one("redis")
        eventually(lambda: ready.probe(topology, node).ready, within=30, what="redis ready")
        assert queue.connect(topology).get(key) == "kept"
    finally:
        eventually(lambda: queue.connect(topology).delete(key) >= 0, within=30, what="cleanup")
