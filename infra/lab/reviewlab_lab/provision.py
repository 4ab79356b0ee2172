"""What the lab needs once its nodes run: DNS records, shard map, bucket, schemas, demo data.

The schemas and the demo users and products come from the migrations (`reviewlab db migrate`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image
from reviewlab_common import cdn, shards, storage
from reviewlab_common.etcd import Etcd
from reviewlab_common.photos import product_key
from reviewlab_common.topology import Topology

from reviewlab_lab import dbmigrate, dnsrecords, etcdaccess


def product_image(product_id: int) -> bytes:
    """A small generated product picture (mutable key: the CDN caches it briefly)."""
    hue = (product_id * 47) % 255
    image = Image.new("RGB", (240, 320), (hue, 180, 255 - hue))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def seed_media(topology: Topology) -> None:
    s3 = storage.client(topology, retries=3)
    for product_id in range(1, 51):
        key = product_key(product_id)
        if not storage.exists(s3, key):
            storage.put_object(
                s3, key, product_image(product_id), content_type="image/jpeg", immutable=False
            )


def push_products(topology: Topology) -> str:
    """Pre-warm every edge (and the shield) with the product images; a miss is no error."""
    pushed = cdn.push(topology, [product_key(p) for p in range(1, 51)], timeout=5)
    failed = sum(status.startswith(("HTTP", "no answer")) for status in pushed.values())
    return f"{len(pushed) - failed} of {len(pushed)} pushed"


def shield_read_policy(topology: Topology) -> str:
    """Anonymous GET on the media bucket, but only from the CDN shield's address: the edges
    pull from the shield and never reach the bucket themselves."""
    readers = [f"{topology.one('shield').address}/32"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ShieldOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": ["*"]},
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{storage.MEDIA_BUCKET}/*"],
                    "Condition": {"IpAddress": {"aws:SourceIp": readers}},
                }
            ],
        }
    )


def media_bucket(topology: Topology) -> None:
    """Create the private media bucket and its shield-only read policy (idempotent)."""
    s3 = storage.client(topology, retries=3)
    bucket = storage.MEDIA_BUCKET
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=shield_read_policy(topology))
    except (BotoCoreError, ClientError) as exc:
        raise storage.StorageUnavailable(f"could not provision bucket {bucket!r}: {exc}") from exc


def shard_map(topology: Topology) -> bool:
    """Write the initial bucket -> shard map to etcd unless one exists; True if written."""
    return Etcd(topology, user="root").put_if_absent(
        shards.SHARD_MAP_KEY, shards.encode(shards.even_map(topology))
    )


def _fences(topology: Topology) -> None:
    from reviewlab_lab.resharding import registry

    for line in registry.sync(topology):
        print(f"   {line}", flush=True)


def steps(topology: Topology) -> list[tuple[str, Callable[[], object]]]:
    result: list[tuple[str, Callable[[], object]]] = [
        ("DNS records (signed dynamic update)", lambda: dnsrecords.sync(topology)),
        ("etcd users, roles and auth", lambda: etcdaccess.provision(topology)),
        ("shard map in etcd", lambda: shard_map(topology)),
        ("private media bucket", lambda: media_bucket(topology)),
    ]
    result.append(
        (
            "database schemas to head (Alembic, every cluster)",
            lambda: dbmigrate.migrate_all(topology, lambda r: print(r.line(), flush=True)),
        )
    )
    result.append(("shard set and bucket fences (as the map says)", lambda: _fences(topology)))
    result.append(("product images", lambda: seed_media(topology)))
    result.append(("product images pushed to the CDN edges", lambda: push_products(topology)))
    return result
