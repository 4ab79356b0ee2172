"""The one interface both runtimes offer: the CLI, chaos and the tests talk only to it."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from reviewlab_common import faults, httpclient
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import kinds, loadbalancer
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import LabPaths

Say = Callable[[str], None]
NODE_ACTIONS = ("start", "stop", "restart", "kill", "pause", "resume")
# The node a lab process is: set for every node on both runtimes, never for the machine's tools.
NODE_ENV = "REVIEWLAB_NODE"


class RuntimeUnavailable(LabFailed):
    """The runtime cannot run here (no Docker daemon, the other runtime holds the ports...)."""


class SwitchFailed(LabFailed):
    """nginx refused the vIP's new config; the previous mode is still serving."""


@dataclass(frozen=True)
class NodeProcess:
    """What the runtime knows of a node's process (native) or container (Compose)."""

    name: str
    # running, starting, paused, stopped, restarting, backoff, fatal, ...
    state: str
    pid: int | None


class Runtime(abc.ABC):
    """Runs the lab's nodes: start, stop, crash and freeze them, list them, read their logs."""

    name: str

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def node(self, name: str) -> Node:
        from reviewlab_common.topology import TopologyError

        if name not in self.topology.nodes:
            raise TopologyError(f"no node named {name!r}; nodes: {', '.join(self.topology.nodes)}")
        return self.topology.nodes[name]

    # The whole lab ---------------------------------------------------------------------------
    @abc.abstractmethod
    def running(self) -> bool:
        """Is a lab of this runtime up (even partly) on this machine?"""

    @abc.abstractmethod
    def launch(self, say: Say) -> None:
        """Start every node, or apply a changed topology to a running lab."""

    @abc.abstractmethod
    def provisions_itself(self) -> bool:
        """True when the runtime provisions the lab itself (Compose has a one-shot service)."""

    def wait_provisioned(self, say: Say, timeout: float) -> None:  # noqa: B027
        """Wait for the runtime's own provisioning (only when it provisions itself)."""

    @abc.abstractmethod
    def shutdown(self, say: Say) -> None:
        """Stop every node; keep the data."""

    @abc.abstractmethod
    def wipe(self, say: Say) -> None:
        """Delete every node's data (the lab is down)."""

    # One node --------------------------------------------------------------------------------
    @abc.abstractmethod
    def processes(self) -> dict[str, NodeProcess]:
        """Every node this runtime knows, by name."""

    @abc.abstractmethod
    def start(self, name: str) -> None: ...

    @abc.abstractmethod
    def stop(self, name: str) -> None:
        """A clean stop; the node stays down until started."""

    @abc.abstractmethod
    def restart(self, name: str) -> None: ...

    @abc.abstractmethod
    def kill(self, name: str) -> None:
        """SIGKILL: a crash (for Postgres, Patroni and its postmaster); the runtime restarts it."""

    @abc.abstractmethod
    def lose(self, name: str) -> None:
        """SIGKILL, and no restart: a node lost until start() brings it back."""

    @abc.abstractmethod
    def pause(self, name: str) -> None:
        """Freeze the node (SIGSTOP / cgroup freezer): it holds its sockets but answers nothing."""

    @abc.abstractmethod
    def resume(self, name: str) -> None: ...

    def act(self, action: str, name: str) -> None:
        """Run one of NODE_ACTIONS on node NAME."""
        node = self.node(name)
        if not kinds.of(node).runs:
            members = ", ".join(node.members) or "its members"
            raise LabFailed(
                f"{name} is an address, not a process: act on a load balancer that may hold it "
                f"({members}); `reviewlab status` shows which one does"
            )
        if action not in NODE_ACTIONS:
            raise ValueError(f"unknown node action {action!r}; actions: {', '.join(NODE_ACTIONS)}")
        getattr(self, action)(name)

    @abc.abstractmethod
    def log_command(self, name: str, lines: int, follow: bool) -> list[str]:
        """The command that prints a node's log."""

    def run_in_node(self, name: str, argv: list[str]) -> str:
        """Run ARGV where node NAME runs, as a client inside the lab's network; its output."""
        import subprocess

        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise LabFailed(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
        return done.stdout

    def exec_command(self, name: str, argv: list[str]) -> list[str]:
        """The command that runs ARGV where node NAME runs (here, on the machine)."""
        return argv

    @abc.abstractmethod
    def partition(self, name: str, peers: list[str]) -> None:
        """Cut node NAME off from the nodes PEERS, both ways; it keeps running."""

    @abc.abstractmethod
    def heal(self, name: str, peers: list[str]) -> None:
        """Undo partition(NAME, PEERS); safe to call when nothing is cut."""

    def set_delay(self, name: str, delay_ms: int) -> None:
        """Node NAME's lab-only latency switch, a file the node itself reads (0 removes it)."""
        faults.set_delay(self.topology, name, delay_ms)

    @abc.abstractmethod
    def limit_cpu(self, name: str, cores: float | None) -> None:
        """Hold node NAME to CORES of CPU time, as if it had a small machine of its own;
        None lifts the budget."""

    @abc.abstractmethod
    def partitioned(self) -> bool:
        """Is any node of the lab cut off from others now?"""

    @abc.abstractmethod
    def heal_all(self) -> None:
        """Undo every partition the lab's nodes have, whoever made it (`reviewlab chaos heal`)."""

    def postmaster_pid(self, name: str) -> int | None:
        """Postgres's own pid where the runtime sees it apart from Patroni's (None otherwise)."""
        return None

    # The vIP's mode --------------------------------------------------------------------------
    def node_paths(self) -> LabPaths:
        """Where the nodes themselves keep their configs, logs and switches."""
        return LabPaths.of(self.topology)

    def lb_mode(self) -> loadbalancer.LbMode:
        """The layer and algorithm the vIP serves now (every member serves the same)."""
        lb = self.topology.load_balancers()[0].name
        return loadbalancer.parse_mode(
            self.read_node_file(lb, loadbalancer.mode_file(self.node_paths()))
        )

    @abc.abstractmethod
    def vip_carriers(self) -> list[str]:
        """The load balancers whose interface carries the vIP now, in the topology's order:
        one while the pair agrees, two in a split brain, none between holders."""

    def vip_holder(self) -> str | None:
        """The load balancer answering on the vIP now, by its own word (the ceiling server's
        /lab-mode names its member); None while none answers. What a client meets, whichever
        interface still carries the address."""
        vip = self.topology.vip
        try:
            reply = httpclient.get(f"http://{vip.address}:{vip.ceiling_port}/lab-mode", timeout=1.0)
            member = str(reply.json()["member"]) if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        return member if member in vip.members else None

    @abc.abstractmethod
    def apply_lb_mode(self, mode: loadbalancer.LbMode) -> bool:
        """Switch the vIP to MODE with a graceful reload; False when it already served it.

        Raises SwitchFailed (the previous mode keeps serving) when nginx refuses the config.
        """

    def read_node_file(self, name: str, path: str) -> str | None:
        """A file of node NAME's own (None if it has none yet)."""
        try:
            with open(path) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def state(self, name: str) -> str:
        process = self.processes().get(name)
        return process.state if process else "stopped"
