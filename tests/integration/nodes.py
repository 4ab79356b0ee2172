"""The tests' node controller: start, stop, kill and freeze lab nodes through the lab's runtime.

Tests never talk to supervisord or Docker directly: they use the same driver as the CLI, so
every fault test runs unchanged on the native and the Compose runtime. Waits are
"eventually" polls with deadlines scaled by REVIEWLAB_SLOW.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from reviewlab_common.topology import Topology
from reviewlab_lab import ready, runtimes
from reviewlab_lab.errors import LabFailed

from tests.conftest import deadline
from tests.integration.conftest import eventually

# States in which the runtime is (re)starting the node by itself.
COMING_UP = ("starting", "running", "backoff", "restarting")
# Run inside a node's container: GET a URL COUNT times over WORKERS threads, print the replies.
IN_NODE_GET = """
import base64, json, sys
from concurrent.futures import ThreadPoolExecutor
import httpx
url, count, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def get(http):
    reply = http.get(url)
    return [reply.status_code, dict(reply.headers), base64.b64encode(reply.content).decode()]
with httpx.Client(timeout=15) as http, ThreadPoolExecutor(max_workers=workers) as pool:
    print(json.dumps(list(pool.map(lambda _: get(http), range(count)))))
"""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> object:
        return json.loads(self.content)


class Nodes:
    """One lab's nodes, as a test drives them."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.runtime = runtimes.of(topology)

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    def state(self, name: str) -> str:
        return self.runtime.state(name)

    def pid(self, name: str) -> int | None:
        process = self.runtime.processes().get(name)
        return process.pid if process else None

    def is_ready(self, name: str) -> bool:
        return ready.probe(self.topology, self.topology.nodes[name]).ready

    def wait_ready(self, name: str, within: float = 60) -> None:
        eventually(lambda: self.is_ready(name), within=within, what=f"{name} ready")

    def wait_all_ready(self, within: float = 60) -> None:
        """Every node of the lab answers its readiness probe."""

        def pending() -> list[str]:
            return [n for n in self.topology.nodes if not self.is_ready(n)]

        eventually(lambda: not pending(), within=within, what="every node ready")

    def wait_state(self, name: str, state: str, within: float = 30) -> None:
        eventually(lambda: self.state(name) == state, within=within, what=f"{name} {state}")

    def stop(self, name: str) -> None:
        """Stop NAME and make sure the runtime's restart policy did not bring it back."""
        limit = time.monotonic() + deadline(30)
        while time.monotonic() < limit:
            state = self.state(name)
            if state == "stopped":
                return
            if state in COMING_UP:
                with contextlib.suppress(LabFailed):  # it exited between the check and the stop
                    self.runtime.stop(name)
            time.sleep(0.05)
        raise AssertionError(f"{name} did not stay stopped: {self.state(name)}")

    def start(self, name: str, *, wait_ready: bool = True) -> None:
        if self.state(name) not in ("running", "starting"):
            self.runtime.start(name)
        if wait_ready:
            self.wait_ready(name)

    def kill(self, name: str) -> int | None:
        """SIGKILL NAME (a crash); returns the pid that was killed."""
        before = self.pid(name)
        self.runtime.kill(name)
        return before

    def restarted_since(self, name: str, old_pid: int | None) -> bool:
        pid = self.pid(name)
        return pid is not None and pid != old_pid and self.state(name) == "running"

    def in_node(self, name: str, argv: list[str]) -> str:
        """Run ARGV where node NAME runs (its container, under Compose); return its output."""
        return self.runtime.run_in_node(name, argv)

    def get_from(self, name: str, url: str, *, count: int = 1, workers: int = 1) -> list[Reply]:
        """GET URL COUNT times as a client at node NAME's address (from inside its container,
        under Compose): what a policy that trusts that address lets through."""
        if self.runtime_name == "native":
            source = self.topology.nodes[name].address
            transport = httpx.HTTPTransport(local_address=source)
            with (
                httpx.Client(transport=transport, timeout=15) as http,
                ThreadPoolExecutor(max_workers=workers) as pool,
            ):
                replies = list(pool.map(lambda _: http.get(url), range(count)))
            return [Reply(r.status_code, dict(r.headers), r.content) for r in replies]
        argv = ["python", "-c", IN_NODE_GET, url, str(count), str(workers)]
        raw = json.loads(self.in_node(name, argv))
        return [Reply(status, headers, base64.b64decode(body)) for status, headers, body in raw]

    def set_lb(self, layer: str, algorithm: str, drain: str = "none") -> None:
        """Switch the vIP live, as a learner does: `reviewlab lb set` (every server in
        rotation unless DRAIN names some)."""
        from reviewlab_lab import install

        argv = [str(install.current().bin / "reviewlab"), "lb", "set"]
        done = subprocess.run(
            [*argv, "--layer", layer, "--algorithm", algorithm, "--drain", drain],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    @contextmanager
    def vip_in_layer(self, layer: str) -> Iterator[None]:
        """The vIP switched to LAYER (round robin) for a block, back to the default after."""
        from reviewlab_lab import loadbalancer

        self.set_lb(layer, "round_robin")
        try:
            yield
        finally:
            default = loadbalancer.LbMode()
            self.set_lb(default.layer, default.algorithm)

    def set_delay(self, name: str, delay_ms: int) -> None:
        """The lab-only latency switch of a web server or worker (0 removes it)."""
        self.runtime.set_delay(name, delay_ms)

    def pause(self, name: str) -> None:
        self.runtime.pause(name)

    def resume(self, name: str) -> None:
        self.runtime.resume(name)

    @contextmanager
    def stopped(self, name: str) -> Iterator[None]:
        """NAME is down inside the block, and back and ready after it."""
        self.stop(name)
        try:
            yield
        finally:
            self.start(name)
