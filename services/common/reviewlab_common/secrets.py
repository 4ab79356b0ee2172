"""The lab's secrets: generated once per machine by `make setup`, never committed.

A secrets file written before a secret existed gets that secret generated and added the next
time it is loaded; the secrets it already holds are kept as they are.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets as token_source
from dataclasses import asdict, dataclass, fields
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
    # One Redis ACL user per client tier (see queue.ACL).
    redis_admin_password: str
    redis_web_password: str
    redis_worker_password: str
    # etcd users: root (provisioning), patroni (its clusters' keys), web (reads the shard map).
    etcd_root_password: str
    etcd_patroni_password: str
    etcd_web_password: str
    # Patroni's REST API: writes (restart, reload, switchover, config) need this user.
    patroni_rest_password: str

    def redis_password(self, user: str) -> str:
        """The password of a Redis ACL user (admin, web, worker)."""
        return str(getattr(self, f"redis_{user}_password"))

    def etcd_password(self, user: str) -> str:
        """The password of an etcd user (root, patroni, web)."""
        return str(getattr(self, f"etcd_{user}_password"))


def secrets_path(topology: Topology) -> Path:
    return topology.lab.data_dir / "secrets" / "lab.json"


def _word() -> str:
    return token_source.token_urlsafe(24)


def generate() -> LabSecrets:
    """Fresh random secrets for a new lab."""
    values = {field.name: _word() for field in fields(LabSecrets)}
    values["minio_user"] = "reviewlab-" + token_source.token_hex(4)
    values["tsig_secret"] = base64.b64encode(token_source.token_bytes(32)).decode()
    return LabSecrets(**values)


def _write(path: Path, values: dict[str, str]) -> None:
    """Replace the file atomically, readable by its owner only, keeping its owner."""
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
    if path.exists():
        owner = path.stat()
        if (owner.st_uid, owner.st_gid) != (os.getuid(), os.getgid()):
            os.chown(temporary, owner.st_uid, owner.st_gid)
    os.replace(temporary, path)


def _completed(path: Path, data: dict[str, str]) -> dict[str, str]:
    """DATA with every secret it lacks generated and saved (under a lock: one writer wins)."""
    names = [field.name for field in fields(LabSecrets)]
    if all(name in data for name in names):
        return data
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        data = json.loads(path.read_text())  # another process may have completed it meanwhile
        missing = [name for name in names if name not in data]
        if missing:
            fresh = asdict(generate())
            data |= {name: fresh[name] for name in missing}
            _write(path, data)
    finally:
        os.close(directory)  # releases the lock
    return data


def ensure(topology: Topology) -> LabSecrets:
    """Load the lab's secrets, generating them on first use (readable by the owner only)."""
    path = secrets_path(topology)
    if path.exists():
        return load(topology)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(fresh), handle, indent=2)
    return fresh


def load(topology: Topology) -> LabSecrets:
    path = secrets_path(topology)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SecretsMissing(f"{path} does not exist: run `make setup` first") from exc
    data = _completed(path, data)
    known = {field.name for field in fields(LabSecrets)}
    return LabSecrets(**{name: value for name, value in data.items() if name in known})
