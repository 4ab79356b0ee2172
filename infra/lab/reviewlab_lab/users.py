"""Demo users, read from the catalog."""

from __future__ import annotations

import psycopg
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.db import APP_USER, cluster_conninfo
from reviewlab_common.topology import Topology, TopologyError


def user_id(topology: Topology, handle: str) -> int:
    """The id of the demo user HANDLE (kim, alex, sam, noor, loadtest)."""
    info = cluster_conninfo(
        topology.catalog,
        user=APP_USER,
        password=lab_secrets.load(topology).app_password,
        app="reviewlab-cli",
        session="any",
    )
    try:
        with psycopg.connect(info) as conn:
            row = conn.execute("SELECT id FROM users WHERE handle = %s", (handle,)).fetchone()
            handles = [r[0] for r in conn.execute("SELECT handle FROM users ORDER BY id")]
    except psycopg.OperationalError as exc:
        raise TopologyError(
            f"the catalog is not reachable ({exc}): is the lab up? `make up`"
        ) from exc
    if row is None:
        raise TopologyError(f"no user {handle!r}; demo users: {', '.join(handles)}")
    return int(row[0])
