"""The lab's secrets: generated once per machine by `make setup`, never committed."""

from __future__ import annotations

import base64
import json
import os
import secrets as token_source
from dataclasses import asdict, dataclass
from pathlib import Path

from reviewlab_common.topology import Topology

TSIG_KEY_NAME = "reviewlab-update"
TSIG_ALGORITHM = "hmac-sha256"


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


def secrets_path(topology: Topology) -> Path:
    return topology.lab.data_dir / "secrets" / "lab.json"


def generate() -> LabSecrets:
    """Fresh random secrets for a new lab."""

    def word() -> str:
        return token_source.token_urlsafe(24)

    return LabSecrets(
        postgres_password=word(),
        replication_password=word(),
        app_password=word(),
        minio_user="reviewlab-" + token_source.token_hex(4),
        minio_password=word(),
        token_secret=word(),
        tsig_secret=base64.b64encode(token_source.token_bytes(32)).decode(),
    )


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
    return LabSecrets(**data)
