"""The tests' node controller: start, stop, kill and freeze lab nodes through the lab's runtime.

Tests never talk to supervisord or Docker directly: they use the same driver as the CLI, so
every fault test runs unchanged on the native and the Compose runtime. Waits are
"eventually" polls with deadlines scaled by REVIEWLAB_SLOW.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from reviewlab_common.topology import Topology
from reviewlab_lab import ready, runtimes
from reviewlab_lab.errors import LabFailed

from tests.conftest import deadline
from tests.integration.conftest import eventually

# States in which the runtime is (re)starting the node by itself.
COMING_UP = ("starting", "running", "backoff", "restarting")


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

    @contextmanager
    def paused(self, name: str) -> Iterator[None]:
        self.pause(name)
        try:
            yield
        finally:
            self.resume(name)
