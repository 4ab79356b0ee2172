"""etcd's users, roles and `auth enable`: a provisioning step, idempotent.

| user    | may                                                    |
|---------|--------------------------------------------------------|
| root    | everything (provisioning: users, roles, the shard map) |
| patroni | read and write its clusters' keys, /reviewlab/<scope>/ |
| web     | read (and watch) the shard map                         |

Once auth is on, a client without a user's token can read or write no key.
"""

from __future__ import annotations

from reviewlab_common import secrets as lab_secrets
from reviewlab_common.etcd import (
    PATRONI_ETCD_USER,
    PATRONI_NAMESPACE,
    Etcd,
    EtcdError,
    EtcdUser,
    b64,
    prefix_end,
)
from reviewlab_common.shards import SHARD_MAP_KEY
from reviewlab_common.topology import Topology

ALREADY = "already exists"


def grants(topology: Topology) -> dict[EtcdUser, list[dict[str, str]]]:
    """Each user's permissions (etcd's role/grant `perm`), held by a role of the user's name."""
    patroni = [
        {
            "permType": "READWRITE",
            "key": b64(f"{PATRONI_NAMESPACE}{scope}/"),
            "range_end": b64(prefix_end(f"{PATRONI_NAMESPACE}{scope}/")),
        }
        for scope in sorted(topology.clusters)
    ]
    return {
        "root": [],  # etcd's built-in root role may do everything
        PATRONI_ETCD_USER: patroni,
        "web": [{"permType": "READ", "key": b64(SHARD_MAP_KEY)}],
    }


def _password_works(topology: Topology, user: EtcdUser) -> bool:
    """Does etcd (auth on) accept USER's password from the secrets? False while auth is off."""
    client = Etcd(topology, user=user)
    try:
        return client.authenticate(client.urls[0])
    except EtcdError:
        return False


def provision(topology: Topology) -> None:
    """Create the users and their roles, keep their passwords equal to the secrets, enable auth."""
    secrets = lab_secrets.load(topology)
    root = Etcd(topology, user="root")
    try:
        root.authenticate(root.urls[0])
    except EtcdError as exc:
        raise EtcdError(
            f"{exc}: etcd has auth on and refuses root's password from the lab's secrets. "
            "If the secrets file was replaced, `reviewlab reset` starts etcd afresh"
        ) from exc
    for user, perms in grants(topology).items():
        try:
            root.call("auth/user/add", {"name": user, "password": secrets.etcd_password(user)})
        except EtcdError as exc:
            if ALREADY not in str(exc):
                raise
            if not _password_works(topology, user):
                root.call(
                    "auth/user/changepw", {"name": user, "password": secrets.etcd_password(user)}
                )
        try:
            root.call("auth/role/add", {"name": user})
        except EtcdError as exc:
            if ALREADY not in str(exc):
                raise
        for perm in perms:
            root.call("auth/role/grant", {"name": user, "perm": perm})
        root.call("auth/user/grant", {"user": user, "role": user})
    root.call("auth/enable", {})
