"""The lab's secrets, as the services read them: never committed, never generated here.

The lab makes and completes the file (reviewlab_lab.secretfile); a service only loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from reviewlab_common.topology import Topology

TSIG_KEY_NAME = "reviewlab-update"
TSIG_ALGORITHM = "hmac-sha256"
# The user that Patroni's REST API asks for on writes.
PATRONI_REST_USER = "admin"


class SecretsMissing(RuntimeError):
    """The secrets file has not been generated yet."""


@dataclass(frozen=True)
class LabSecrets:
    postgres_password: str
    replication_password: str
    app_password: str
    minio_user: str
    minio_password: str
    token_secret: str
    tsig_secret: str
    # One Redis ACL user per client tier (the lab's redisacl.ACL).
    redis_admin_password: str
    redis_web_password: str
    redis_worker_password: str
    # The Redis exporter's user: reads the server's INFO and the job streams' lengths.
    redis_metrics_password: str
    # etcd users: root (provisioning), patroni (its clusters' keys), web (reads the shard map).
    etcd_root_password: str
    etcd_patroni_password: str
    etcd_web_password: str
    # Patroni's REST API: writes (restart, reload, switchover, config) need this user.
    patroni_rest_password: str
    # The lab's admin secret: what the console asks before it starts a chaos run, and what
    # the chaos runner shows it has when it reports its phases to the console.
    admin_secret: str

    def redis_password(self, user: str) -> str:
        """The password of a Redis ACL user (admin, web, worker, metrics)."""
        return str(getattr(self, f"redis_{user}_password"))

    def etcd_password(self, user: str) -> str:
        """The password of an etcd user (root, patroni, web)."""
        return str(getattr(self, f"etcd_{user}_password"))


def secrets_path(topology: Topology) -> Path:
    return topology.lab.data_dir / "secrets" / "lab.json"


def load(topology: Topology) -> LabSecrets:
    path = secrets_path(topology)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SecretsMissing(f"{path} does not exist: run `make setup` first") from exc
    names = [field.name for field in fields(LabSecrets)]
    missing = [name for name in names if name not in data]
    if missing:
        raise SecretsMissing(
            f"{path} lacks {', '.join(missing)} (written by an older lab): "
            "`reviewlab up` adds them and keeps the others"
        )
    return LabSecrets(**{name: data[name] for name in names})
