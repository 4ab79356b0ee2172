"""The Compose runtime: every node a container on the lab's bridge network.

The host drives it with the docker CLI: Compose brings the project up and down, and node
control acts on one container. Commands that change a node's own files (the vIP's mode, a
fault switch) run inside that node's container, where the same `reviewlab` code lives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from reviewlab_common import faults
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology, TopologyError, load

from reviewlab_lab import composefile, kinds, netcut
from reviewlab_lab.composefile import COMPOSE_FILE, CONTAINER_SECRETS, INIT, NETWORK, PROVISION
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.runtimes import lbswitch
from reviewlab_lab.runtimes.base import (
    NODE_ENV,
    NodeProcess,
    Runtime,
    RuntimeUnavailable,
    Say,
    SwitchFailed,
)
from reviewlab_lab.vrrp import pair as vrrp_pair
from reviewlab_lab.vrrp import publish

# Every rule a partition adds inside a container carries the partitions' comment, so a heal
# finds them.
PARTITION_TAG = netcut.RULE_TAG
# Docker's states in which a container has its network namespace.
RUNNING = ("running", "paused", "restarting")
DOCKER_HINT = (
    "start the Docker daemon (`make docker` installs and starts it; by hand: "
    "`dockerd >/var/log/dockerd.log 2>&1 &`)"
)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return probe.returncode == 0


class ComposeRuntime(Runtime):
    name = "compose"

    def __init__(self, topology: Topology) -> None:
        super().__init__(topology)
        try:
            self.project = composefile.project(topology)
            composefile.job_range(topology)  # no node where the one-shot jobs get addresses
        except TopologyError as exc:
            raise RuntimeUnavailable(str(exc)) from exc

    # docker and Compose ----------------------------------------------------------------------
    def container(self, name: str) -> str:
        """The container that runs node (or one-shot service) NAME."""
        return composefile.container_name(self.topology, name)

    @property
    def on_host(self) -> bool:
        """True on the machine, driving the containers; False inside a node's container."""
        return not os.environ.get(NODE_ENV)

    @cached_property
    def compose(self) -> list[str]:
        """`docker compose` (v2) where the plugin exists, else Debian's docker-compose (v1)."""
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if v2.returncode == 0:
            base = ["docker", "compose"]
        elif shutil.which("docker-compose"):
            base = ["docker-compose"]
        else:
            raise RuntimeUnavailable(
                "neither `docker compose` nor `docker-compose` is installed; run `make docker`"
            )
        return [*base, "-p", self.project, "-f", str(COMPOSE_FILE)]

    def _docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise LabFailed(f"`docker {' '.join(args)}` failed: {detail[-1] if detail else ''}")
        return result

    def _inspect(self) -> list[dict[str, Any]]:
        ids = self._docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"
        ).stdout.split()
        if not ids:
            return []
        return list(json.loads(self._docker("inspect", *ids).stdout))

    # The whole lab ---------------------------------------------------------------------------
    def running(self) -> bool:
        if not docker_available():
            return False
        ids = self._docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}", check=False
        ).stdout.split()
        return bool(ids)

    def provisions_itself(self) -> bool:
        return True

    def preflight(self) -> None:
        """Refuse to start where it cannot work, with the fix in one line."""
        if not docker_available():
            raise RuntimeUnavailable(f"no Docker daemon answers: {DOCKER_HINT}")
        stale = composefile.stale_reason()
        if stale:
            raise RuntimeUnavailable(stale)
        missing = [
            image
            for image in sorted(self.images())
            if self._docker("image", "inspect", image, check=False).returncode != 0
        ]
        if missing:
            raise RuntimeUnavailable(
                f"image {missing[0]} is not built ({len(missing)} missing): run `make images`"
            )

    def images(self) -> set[str]:
        nodes = self.topology.nodes.values()
        return {composefile.image_of(node) for node in nodes if kinds.of(node).runs}

    def launch(self, say: Say) -> None:
        self.preflight()
        count = sum(1 for node in self.topology.nodes.values() if kinds.of(node).runs)
        say(f"starting {count} containers with {' '.join(self.compose[:2])}")
        result = subprocess.run([*self.compose, "up", "-d"], check=False)
        if result.returncode != 0:
            raise LabFailed(
                "Compose could not start the lab (its messages are above); "
                "`reviewlab logs NODE` shows a node's log"
            )
        # `up` returns once the init service has made the secrets: the host keeps a copy.
        self.fetch_secrets()
        self._publish_vip(say)

    def _publish_vip(self, say: Say) -> None:
        """The machine's vIP address, forwarded to the floating address on the bridge."""
        vip, gateway = self.topology.vip, self.topology.lab.runtime.gateway
        assert gateway is not None
        # The ports Compose would publish, were the vIP one container's.
        ports = composefile.published_ports(vip)
        publish.publish(vip.host_address, ports, vip.address, gateway)
        say(
            f"  the vIP: {vip.host_address}:{vip.port} on this machine, {vip.address} on the bridge"
        )

    def wait_provisioned(self, say: Say, timeout: float) -> None:
        """Wait for the one-shot provisioning service, then copy the secrets to the host."""
        container = self.container(PROVISION)
        limit = time.monotonic() + timeout
        while True:
            state = self._docker(
                "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container, check=False
            ).stdout.split()
            if state and state[0] == "exited":
                break
            if time.monotonic() > limit:
                raise LabFailed(
                    f"provisioning did not finish in {timeout:.0f} s; see `docker logs {container}`"
                )
            time.sleep(1)
        logs = self._docker("logs", container, check=False)
        for line in (logs.stdout + logs.stderr).splitlines():
            if line.strip().startswith("done"):
                say(f"  {line.strip()}")
        if state[1] != "0":
            tail = (logs.stdout + logs.stderr).strip().splitlines()[-1:]
            raise LabFailed(
                f"provisioning failed: {tail[0] if tail else 'no output'}; "
                f"see `docker logs {container}`, then run `make up RUNTIME=compose` again"
            )

    def fetch_secrets(self) -> None:
        """The host's programs (CLI, tests) read the lab's secrets from a private copy."""
        target = lab_secrets.secrets_path(self.topology)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o700)
        self._docker("cp", f"{self.container(INIT)}:{CONTAINER_SECRETS}", str(target))
        target.chmod(0o600)

    def shutdown(self, say: Say) -> None:
        if not docker_available():
            return
        say("stopping every container (Compose down; named volumes keep the data)")
        publish.unpublish()
        subprocess.run([*self.compose, "down", "--remove-orphans"], check=False)

    def wipe(self, say: Say) -> None:
        if not docker_available():
            return
        publish.unpublish()
        subprocess.run([*self.compose, "down", "--volumes", "--remove-orphans"], check=False)
        say(f"removed the Compose lab's containers and volumes (project {self.project})")

    # One node --------------------------------------------------------------------------------
    def processes(self) -> dict[str, NodeProcess]:
        result = {}
        for entry in self._inspect():
            labels = entry["Config"]["Labels"]
            name = labels.get("com.docker.compose.service")
            if name not in self.topology.nodes:
                continue
            state = entry["State"]
            status = "paused" if state["Paused"] else state["Status"]
            # Docker's words for a container that does not run: the lab says "stopped".
            status = "stopped" if status in ("exited", "created", "dead") else status
            result[name] = NodeProcess(name, status, state["Pid"] or None)
        return result

    def start(self, name: str) -> None:
        self._docker("start", self.container(name))

    def stop(self, name: str) -> None:
        self._docker("stop", self.container(name))

    def restart(self, name: str) -> None:
        self._docker("restart", self.container(name))

    def kill(self, name: str) -> None:
        # SIGKILL of the container's process, from the host: a crash the restart policy
        # answers (`docker kill` would count as a deliberate stop). For Postgres this kills
        # Patroni and, with the container, its postmaster: a node loss.
        process = self.processes().get(name)
        if process is None or process.pid is None:
            raise LabFailed(f"{name} is not running; `reviewlab node start {name}` starts it")
        os.kill(process.pid, signal.SIGKILL)

    def lose(self, name: str) -> None:
        # `docker kill` is SIGKILL that the restart policy treats as a deliberate stop.
        self._docker("kill", self.container(name))

    def pause(self, name: str) -> None:
        self._docker("pause", self.container(name))

    def resume(self, name: str) -> None:
        self._docker("unpause", self.container(name))

    @property
    def network(self) -> str:
        return f"{self.project}_{NETWORK}"

    def _netns_pid(self, name: str) -> int:
        """A process inside node NAME's container: the way into its network namespace."""
        process = self.processes().get(name)
        if process is None or process.pid is None:
            raise LabFailed(f"{name} is not running; `reviewlab node start {name}` starts it")
        return process.pid

    @staticmethod
    def _iptables(pid: int, *args: str, check: bool = True) -> str:
        """iptables in the network namespace of process PID, run from the machine (nsenter)."""
        argv = ["nsenter", "--target", str(pid), "--net", "iptables", "-w", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if check and done.returncode != 0:
            raise LabFailed(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
        return done.stdout

    def partition(self, name: str, peers: list[str]) -> None:
        # Rules inside the node's own network namespace drop what it sends to its peers and
        # what they send it; clients (the web tier, the machine) still reach it, as natively.
        # The container keeps its address on the lab network: nothing tells anyone of the cut.
        pid = self._netns_pid(name)
        tag = ["-m", "comment", "--comment", PARTITION_TAG, "-j", "DROP"]
        for peer in peers:
            address = self.node(peer).address
            self._iptables(pid, "-I", "OUTPUT", "-d", address, *tag)
            self._iptables(pid, "-I", "INPUT", "-s", address, *tag)

    def _cuts(self, names: list[str]) -> dict[int, list[list[str]]]:
        """Partition rules by container process, as `iptables -D` arguments."""
        found: dict[int, list[list[str]]] = {}
        processes = self.processes()
        for name in names:
            process = processes.get(name)
            # A stopped container has no network namespace; a started one begins uncut.
            if process is None or process.pid is None or process.state not in RUNNING:
                continue
            for line in self._iptables(process.pid, "-S", check=False).splitlines():
                words = line.split()
                if PARTITION_TAG in line and words[:1] == ["-A"]:
                    rule = [words[1], *(w.strip('"') for w in words[2:])]
                    found.setdefault(process.pid, []).append(rule)
        return found

    def _undo(self, cuts: dict[int, list[list[str]]]) -> None:
        for pid, rules in cuts.items():
            for rule in rules:
                self._iptables(pid, "-D", *rule, check=False)

    def heal(self, name: str, peers: list[str]) -> None:
        self._undo(self._cuts([name]))

    def heal_all(self) -> None:
        self._undo(self._cuts(list(self.topology.nodes)))

    def partitioned(self) -> bool:
        return bool(self._cuts(list(self.topology.nodes)))

    def vip_carriers(self) -> list[str]:
        vip = self.topology.vip.address
        found = []
        processes = self.processes()
        for member in self.topology.load_balancers():
            process = processes.get(member.name)
            if process is None or process.pid is None or process.state not in RUNNING:
                continue
            # The segment's interface only: every member keeps a quiet copy on its loopback.
            interface = vrrp_pair.CONTAINER_INTERFACE
            argv = ["nsenter", "--target", str(process.pid), "--net", "ip", "-4", "-o", "addr",
                    "show", "dev", interface]  # fmt: skip
            shown = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            if f" {vip}/" in shown.stdout:
                found.append(member.name)
        return found

    def log_command(self, name: str, lines: int, follow: bool) -> list[str]:
        return [
            "docker",
            "logs",
            "--tail",
            str(lines),
            *(["-f"] if follow else []),
            self.container(name),
        ]

    def run_in_node(self, name: str, argv: list[str]) -> str:
        if not self.on_host:
            return super().run_in_node(name, argv)
        return self._docker(*self.exec_command(name, argv)[1:]).stdout

    def node_paths(self) -> LabPaths:
        # Inside the containers the data directory is the topology's own, not the host's copy.
        return LabPaths.of(load(runtime="compose"))

    def set_delay(self, name: str, delay_ms: int) -> None:
        """Write the switch into the node's container, running or stopped (`docker cp`)."""
        if not self.on_host:
            super().set_delay(name, delay_ms)
            return
        inside = faults.fault_file(load(runtime="compose"), name)
        with tempfile.TemporaryDirectory() as folder:
            switch = Path(folder) / inside.name
            switch.write_text(faults.switch_text(delay_ms))
            switch.chmod(0o644)
            self._docker("cp", str(switch), f"{self.container(name)}:{inside}")

    def node_pids(self, name: str) -> list[int]:
        """The container's processes as the machine numbers them (none when it is stopped)."""
        from reviewlab_lab import netcut

        pid = int(self._docker("inspect", "-f", "{{.State.Pid}}", self.container(name)).stdout)
        return netcut.descendants(pid) if pid else []

    def limit_cpu(self, name: str, cores: float | None) -> None:
        """The container's processes, as the machine sees them, in a CPU group of their own
        below the container's. (`docker update --cpus` would stay in the container's
        settings: `--cpus 0` does not lift it, and a restart applies it again.)"""
        from reviewlab_lab import cpucap

        pids = self.node_pids(name)
        if cores is None:
            cpucap.lift(name, pids)
        else:
            cpucap.limit(name, pids, cores)

    def apply_lb_mode(self, mode: LbMode) -> bool:
        if not self.on_host:
            own = self.node(os.environ[NODE_ENV])
            return lbswitch.apply(self.topology, self.node_paths(), mode, [own])
        # Each lb container renders, checks and reloads its own nginx: `reviewlab lb set` there.
        argv = ["reviewlab", "lb", "set", "--layer", mode.layer, "--algorithm", mode.algorithm]
        argv += ["--drain", ",".join(mode.drained) or "none"]
        changed = False
        for lb in self.topology.load_balancers():
            done = subprocess.run(
                self.exec_command(lb.name, argv),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip().removeprefix("reviewlab lb set: ")
                where = self.container(lb.name)
                raise SwitchFailed(detail or f"`reviewlab lb set` failed in {where}")
            changed |= done.stdout.strip().endswith(lbswitch.RELOADED)
        return changed

    def read_node_file(self, name: str, path: str) -> str | None:
        if not self.on_host:
            return super().read_node_file(name, path)
        found = self._docker("exec", self.container(name), "cat", path, check=False)
        return found.stdout if found.returncode == 0 else None

    def exec_command(self, name: str, argv: list[str]) -> list[str]:
        """Run ARGV inside node NAME's container (as the lab's user)."""
        return ["docker", "exec", self.container(name), *argv]
