"""The lab's secrets file: the lab completes an older file and keeps what it holds; a service
only reads it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from reviewlab_common import queue
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology, current
from reviewlab_lab import redisacl, secretfile


@pytest.fixture()
def topology(tmp_path: Path) -> Topology:
    """The real topology with its data directory in a temporary folder."""
    real = current()
    return dataclasses.replace(real, lab=dataclasses.replace(real.lab, data_dir=tmp_path))


def test_a_new_lab_gets_every_secret_readable_by_its_owner_only(topology: Topology) -> None:
    made = secretfile.ensure(topology)
    path = lab_secrets.secrets_path(topology)
    assert path.stat().st_mode & 0o777 == 0o600
    assert lab_secrets.load(topology) == made
    values = dataclasses.asdict(made)
    assert all(len(value) >= 16 for value in values.values()), values
    assert len(set(values.values())) == len(values)  # no two secrets alike


def test_a_file_from_before_a_secret_existed_gains_it_and_keeps_the_rest(
    topology: Topology,
) -> None:
    path = lab_secrets.secrets_path(topology)
    path.parent.mkdir(parents=True)
    old = dataclasses.asdict(secretfile.generate())
    for added_later in ("redis_web_password", "etcd_root_password", "patroni_rest_password"):
        del old[added_later]
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    # A service only reads: it names what is missing and how to add it.
    with pytest.raises(lab_secrets.SecretsMissing, match=r"redis_web_password.*reviewlab up"):
        lab_secrets.load(topology)

    loaded = secretfile.ensure(topology)  # what `reviewlab up` and `reviewlab init` run

    assert loaded.postgres_password == old["postgres_password"]
    assert loaded.tsig_secret == old["tsig_secret"]
    assert loaded.redis_web_password and loaded.etcd_root_password
    saved = json.loads(path.read_text())
    assert saved == dataclasses.asdict(loaded)  # persisted: every process reads the same value
    assert lab_secrets.load(topology) == loaded
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_file_says_how_to_make_one(topology: Topology) -> None:
    with pytest.raises(lab_secrets.SecretsMissing, match="make setup"):
        lab_secrets.load(topology)


def test_redis_acl_lines_hold_password_hashes_not_passwords(topology: Topology) -> None:
    made = secretfile.ensure(topology)
    users = {name: (digest, rules) for name, digest, rules in redisacl.acl_users(made)}
    assert set(users) == {"admin", "web", "worker", "metrics"}
    for name, (digest, _) in users.items():
        assert len(digest) == 64 and made.redis_password(name) not in digest
    assert users["web"][1] == "+ping"  # no keys, no stream commands
    assert f"~{queue.JOBS_STREAM}" in users["worker"][1]
    assert "+@all" not in users["worker"][1]
    # The exporter reads counters and stream lengths, never a job nor a write.
    assert "+xread" not in users["metrics"][1] and "+xadd" not in users["metrics"][1]
    assert "+@all" not in users["metrics"][1]
