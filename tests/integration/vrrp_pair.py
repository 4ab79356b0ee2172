"""A scratch pair of load balancers sharing a floating address on this machine: one real nginx
and one real keepalived per member, each member in its own network namespace on a scratch
bridge (reviewlab_lab.vrrp). Its addresses are ones the topology does not use."""

from __future__ import annotations

import abc
import ipaddress
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import Topology
from reviewlab_lab.vrrp import keepalived, segment

BRIDGE = "rl-scratch"
PORT = 8080
ROUTER_ID = 61
PRIORITIES = (150, 100)  # the first member wins the first election


def free_addresses(topology: Topology, count: int) -> list[str]:
    """COUNT addresses of the running runtime's network, from host part 200 up, that no node
    of the lab, the bridge's gateway or Docker's own range for other containers uses."""
    runtime = topology.lab.runtime
    used = {node.address for node in topology.nodes.values()} | {runtime.gateway}
    dynamic = runtime.options.get("dynamic_range")
    taken = ipaddress.ip_network(dynamic) if dynamic else None
    hosts = [runtime.network.network_address + host for host in range(200, 250)]
    free = [str(a) for a in hosts if str(a) not in used and not (taken and a in taken)]
    return free[:count]


def native_topology() -> Topology:
    """The namespaces live on the machine's loopback whichever runtime runs the lab."""
    return lab_topology.load(runtime="native")


class Pair(abc.ABC):
    """What a test asks of a pair, however its members run: who holds the address, what a
    member's keepalived said, and the waits built on them."""

    names = ("lb-a", "lb-b")
    url = ""

    @abc.abstractmethod
    def holder(self) -> str | None: ...

    @abc.abstractmethod
    def log(self, name: str) -> str: ...

    @abc.abstractmethod
    def kill(self, name: str) -> None:
        """Member NAME dies whole: its nginx and its keepalived, with no goodbye advert."""

    def wait_for_standby(self, name: str, seconds: float) -> bool:
        """Until member NAME's health check has passed: only then may it take the address."""
        limit = time.monotonic() + seconds
        while time.monotonic() < limit:
            if "VRRP_Script(service_answers) succeeded" in self.log(name):
                return True
            time.sleep(0.2)
        return False

    def wait_for_holder(self, seconds: float) -> str | None:
        limit = time.monotonic() + seconds
        while time.monotonic() < limit:
            if found := self.holder():
                return found
            time.sleep(0.1)
        return None


class ScratchPair(Pair):
    def __init__(self, topology: Topology) -> None:
        gateway, vip, *members = free_addresses(topology, 4)
        self.segment = segment.Segment(
            BRIDGE,
            gateway,
            vip,
            tuple(segment.Member(n, a) for n, a in zip(self.names, members, strict=True)),
        )
        self.dir = Path(tempfile.mkdtemp(prefix="reviewlab-vrrp-"))
        self.nginx: dict[str, subprocess.Popen[bytes]] = {}
        self.keepalived: dict[str, subprocess.Popen[bytes]] = {}

        self.url = f"http://{self.segment.vip}:{PORT}/"

    def start(self) -> None:
        segment.create(self.segment)
        for member, priority in zip(self.segment.members, PRIORITIES, strict=True):
            self.start_nginx(member.name)
            self._start_keepalived(member, priority)

    def _home(self, name: str) -> Path:
        home = self.dir / name
        home.mkdir(exist_ok=True)
        return home

    def start_nginx(self, name: str) -> None:
        home = self._home(name)
        (home / "nginx.conf").write_text(
            f"daemon off; pid {home}/nginx.pid; error_log {home}/error.log;\n"
            f"events {{}}\nhttp {{ access_log off; server {{ listen {PORT};\n"
            f'  location / {{ return 200 "{name}"; }} }} }}\n'
        )
        argv = self.segment.in_namespace(name, ["nginx", "-c", str(home / "nginx.conf")])
        # A session of its own: killing the group takes the master and every worker at once.
        self.nginx[name] = subprocess.Popen(
            argv, start_new_session=True, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill_nginx(self, name: str) -> None:
        process = self.nginx.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def kill(self, name: str) -> None:
        self.kill_nginx(name)
        process = self.keepalived.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def _start_keepalived(self, member: segment.Member, priority: int) -> None:
        home = self._home(member.name)
        peers = tuple(m.address for m in self.segment.members if m != member)
        check = (
            "/usr/bin/curl",
            "-sf",
            "-m1",
            "-o",
            "/dev/null",
            f"http://{member.address}:{PORT}/",
        )
        instance = keepalived.Instance(
            member.name, member.address, peers, priority, segment.MEMBER_INTERFACE,
            self.segment.vip, ROUTER_ID, check,
        )  # fmt: skip
        (home / "keepalived.conf").write_text(keepalived.render(instance))
        argv = ["keepalived", "-n", "-l", "-D", "-f", str(home / "keepalived.conf")]
        argv += ["-p", str(home / "keepalived.pid"), "-r", str(home / "vrrp.pid")]
        with (home / "keepalived.log").open("wb") as log:
            self.keepalived[member.name] = subprocess.Popen(
                self.segment.in_namespace(member.name, argv),
                start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.dir / name / "keepalived.log").read_text()

    def holder(self) -> str | None:
        return segment.holder(self.segment)

    def close(self) -> None:
        for process in (*self.keepalived.values(), *self.nginx.values()):
            for sent in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sent)
                    process.wait(10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        segment.remove(self.segment)
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)
