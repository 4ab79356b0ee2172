"""The lab's secrets file: generated once per machine (`make setup`, `reviewlab init`, `up`).

The services only read it (reviewlab_common.secrets.load). A file written before a secret
existed gains that secret here, the next time the lab makes sure of its secrets; the secrets it
already holds are kept as they are.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets as token_source
from dataclasses import asdict, fields
from pathlib import Path

from reviewlab_common.secrets import LabSecrets, load, secrets_path
from reviewlab_common.topology import Topology


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


def _complete(path: Path) -> None:
    """Generate and save every secret the file lacks (under a lock: one writer wins)."""
    names = [field.name for field in fields(LabSecrets)]
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        data = json.loads(path.read_text())  # another process may have completed it meanwhile
        missing = [name for name in names if name not in data]
        if missing:
            fresh = asdict(generate())
            _write(path, data | {name: fresh[name] for name in missing})
    finally:
        os.close(directory)  # releases the lock


def ensure(topology: Topology) -> LabSecrets:
    """The lab's secrets, generated on first use and completed (readable by the owner only)."""
    path = secrets_path(topology)
    if path.exists():
        _complete(path)
        return load(topology)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(fresh), handle, indent=2)
    return fresh
