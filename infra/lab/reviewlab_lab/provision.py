"""What the lab needs once its nodes run: DNS records, shard map, bucket, schemas, demo data."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

import psycopg
from PIL import Image
from reviewlab_common import secrets as lab_secrets
from reviewlab_common import shards, storage
from reviewlab_common.db import APP_USER, cluster_conninfo, database_of
from reviewlab_common.etcd import Etcd
from reviewlab_common.topology import Cluster, Topology

from reviewlab_lab import dnsrecords, etcdaccess
from reviewlab_lab.paths import REPO

SCHEMA_DIR = REPO / "services" / "web" / "reviewlab_web" / "schema"


def _superuser(topology: Topology, cluster: Cluster, dbname: str) -> psycopg.Connection[object]:
    info = cluster_conninfo(
        cluster,
        dbname=dbname,
        user="postgres",
        password=lab_secrets.load(topology).postgres_password,
        app="reviewlab-provision",
        session="read-write",
        timeout=3,
    )
    return psycopg.connect(info, autocommit=True)


def migrate(topology: Topology, cluster: Cluster) -> None:
    """Create the app role, the database and its tables on the cluster's primary."""
    secret = lab_secrets.load(topology)
    dbname = database_of(cluster)
    with _superuser(topology, cluster, "postgres") as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone():
            conn.execute(
                psycopg.sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    psycopg.sql.Identifier(APP_USER), psycopg.sql.Literal(secret.app_password)
                )
            )
        else:
            conn.execute(
                psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    psycopg.sql.Identifier(APP_USER), psycopg.sql.Literal(secret.app_password)
                )
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(
                psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    psycopg.sql.Identifier(dbname), psycopg.sql.Identifier(APP_USER)
                )
            )
    schema = "catalog.sql" if cluster.purpose == "catalog" else "reviews.sql"
    with _superuser(topology, cluster, dbname) as conn:
        conn.execute(f"SET ROLE {APP_USER}")
        conn.execute((SCHEMA_DIR / schema).read_text())
        if cluster.purpose == "catalog":
            conn.execute((SCHEMA_DIR / "seed.sql").read_text())


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
        key = f"products/{product_id}.jpg"
        if not storage.exists(s3, key):
            storage.put_object(
                s3, key, product_image(product_id), content_type="image/jpeg", immutable=False
            )


def shard_map(topology: Topology) -> bool:
    """Write the initial bucket -> shard map to etcd unless one exists; True if written."""
    return Etcd(topology, user="root").put_if_absent(
        shards.SHARD_MAP_KEY, shards.encode(shards.even_map(topology))
    )


def steps(topology: Topology) -> list[tuple[str, Callable[[], object]]]:
    result: list[tuple[str, Callable[[], object]]] = [
        ("DNS records (signed dynamic update)", lambda: dnsrecords.sync(topology)),
        ("etcd users, roles and auth", lambda: etcdaccess.provision(topology)),
        ("shard map in etcd", lambda: shard_map(topology)),
        ("private media bucket", lambda: storage.provision(topology)),
    ]
    for cluster in topology.clusters.values():
        result.append((f"schema of {cluster.name}", partial(migrate, topology, cluster)))
    result.append(("product images", lambda: seed_media(topology)))
    return result
