"""`make down` stops every process of the lab; `make up` brings the same data back.

Runs last (file name order): it takes the whole lab down and up again.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable

import httpx
import redis
from reviewlab_common import queue
from reviewlab_common.topology import Topology
from reviewlab_lab.paths import REPO, LabPaths
from reviewlab_lab.procs import Supervisor, pid_alive, postmaster_pid

from tests.conftest import deadline


def lab_pids(topology: Topology) -> dict[str, int]:
    paths = LabPaths.of(topology)
    pids = {name: info.pid for name, info in Supervisor(topology, paths).processes().items()}
    for node in topology.of_kind("postgres"):
        pid = postmaster_pid(paths.pgdata(node.name))
        if pid:
            pids[f"{node.name} postmaster"] = pid
    supervisord = paths.run / "supervisord.pid"
    pids["supervisord"] = int(supervisord.read_text())
    return pids


def make(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(600),
    )


def test_down_stops_every_process_and_up_brings_the_same_data_back(
    topology: Topology, vip: str, token_for: Callable[[int], str]
) -> None:
    posted = httpx.post(
        f"{vip}/api/reviews",
        headers={"Authorization": f"Bearer {token_for(2)}"},
        data={"product_id": "11", "rating": "4", "body": f"kept across down/up {uuid.uuid4()}"},
        timeout=15,
    )
    assert posted.status_code == 201, posted.text
    review = posted.json()
    marker = f"lifecycle-{uuid.uuid4()}"
    queue.connect(topology).set(marker, "kept")
    before = lab_pids(topology)
    # 18 supervised nodes, 7 postmasters, supervisord itself.
    assert len(before) == len(topology.nodes) + len(topology.of_kind("postgres")) + 1
    assert all(pid > 0 for pid in before.values()), before

    down = make("down")
    assert down.returncode == 0, down.stdout + down.stderr
    alive = {name: pid for name, pid in before.items() if pid_alive(pid)}
    assert alive == {}, f"still running after make down: {alive}"
    try:
        queue.connect(topology, timeout=0.5).ping()
        raise AssertionError("Redis still answers after make down")
    except redis.RedisError:
        pass

    up = make("up")
    assert up.returncode == 0, up.stdout + up.stderr
    after = lab_pids(topology)
    assert set(after) == set(before)
    assert not set(after.values()) & set(before.values()), "a process survived the restart"
    assert queue.connect(topology).get(marker) == "kept"
    queue.connect(topology).delete(marker)
    again = httpx.get(f"{vip}/api/reviews/{review['id']}", timeout=10)
    assert again.status_code == 200, again.text
    assert again.json()["body"] == review["body"]
