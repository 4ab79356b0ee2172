"""`make down` stops every process of the lab; `make up` brings the same data back.

It takes the whole lab down and up again, and leaves it up and ready, wherever it runs in
the suite.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable

import httpx
import redis
from reviewlab_common import queue
from reviewlab_common.topology import Topology
from reviewlab_lab import kinds
from reviewlab_lab.paths import REPO
from reviewlab_lab.procs import pid_alive
from reviewlab_lab.runtimes.native import NativeRuntime

from tests.conftest import deadline
from tests.integration.nodes import Nodes


def lab_pids(nodes: Nodes) -> dict[str, int]:
    """Every process of the lab: each node's (a container's main process under Compose),
    plus, natively, each postmaster and supervisord itself."""
    pids = {name: p.pid for name, p in nodes.runtime.processes().items() if p.pid}
    runtime = nodes.runtime
    if isinstance(runtime, NativeRuntime):
        for node in nodes.topology.of_kind("postgres"):
            pid = runtime.postmaster_pid(node.name)
            if pid:
                pids[f"{node.name} postmaster"] = pid
        pids["supervisord"] = int((runtime.paths.run / "supervisord.pid").read_text())
    return pids


def expected_count(nodes: Nodes) -> int:
    extra = 0
    if isinstance(nodes.runtime, NativeRuntime):
        extra = len(nodes.topology.of_kind("postgres")) + 1  # postmasters, supervisord
    # Every node runs a process but the vIP, an address its members pass between them.
    running = [n for n in nodes.topology.nodes.values() if kinds.of(n).runs]
    return len(running) + extra


def make(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(600),
    )


def test_down_stops_every_process_and_up_brings_the_same_data_back(
    topology: Topology, nodes: Nodes, vip: str, token_for: Callable[[int], str]
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
    queue.connect(topology, "admin").set(marker, "kept")
    before = lab_pids(nodes)
    assert len(before) == expected_count(nodes), before
    assert all(pid > 0 for pid in before.values()), before

    down = make("down")
    assert down.returncode == 0, down.stdout + down.stderr
    alive = {name: pid for name, pid in before.items() if pid_alive(pid)}
    assert alive == {}, f"still running after make down: {alive}"
    try:
        queue.connect(topology, "admin", timeout=0.5).ping()
        raise AssertionError("Redis still answers after make down")
    except redis.RedisError:
        pass

    up = make("up")
    assert up.returncode == 0, up.stdout + up.stderr
    after = lab_pids(nodes)
    assert set(after) == set(before)
    assert not set(after.values()) & set(before.values()), "a process survived the restart"
    assert queue.connect(topology, "admin").get(marker) == "kept"
    queue.connect(topology, "admin").delete(marker)
    again = httpx.get(f"{vip}/api/reviews/{review['id']}", timeout=10)
    assert again.status_code == 200, again.text
    assert again.json()["body"] == review["body"]
    # Kept across down/up, then gone: the test leaves no review in the shop.
    gone = httpx.delete(
        f"{vip}/api/reviews/{review['id']}",
        headers={"Authorization": f"Bearer {token_for(2)}"},
        timeout=15,
    )
    assert gone.status_code == 204, gone.text
