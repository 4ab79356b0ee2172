"""The process supervisor (supervisord) that runs every node, and the pids it knows."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from reviewlab_common.topology import Topology
from supervisor.xmlrpc import SupervisorTransport

from reviewlab_lab import install
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import LabPaths


class SupervisorDown(LabFailed):
    """supervisord is not running for this lab."""


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str
    pid: int
    description: str


def as_run_user(topology: Topology, argv: list[str]) -> list[str]:
    """Prefix a command so that it runs as the lab's unprivileged user when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", install.current().run_user, "--", *argv]


def run_user_ids(topology: Topology) -> tuple[int, int]:
    entry = pwd.getpwnam(install.current().run_user)
    return entry.pw_uid, entry.pw_gid


class Supervisor:
    def __init__(self, topology: Topology, paths: LabPaths) -> None:
        self.topology = topology
        self.paths = paths

    @contextmanager
    def _proxy(self) -> Iterator[Any]:
        """An XML-RPC proxy on supervisord's socket, closed after use."""
        transport = SupervisorTransport(None, None, f"unix://{self.paths.supervisor_socket}")
        try:
            yield xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorDown(
                f"the lab is not running (no supervisord at {self.paths.supervisor_socket}); "
                "start it with `make up`"
            ) from exc
        finally:
            transport.close()

    def running(self) -> bool:
        try:
            with self._proxy() as proxy:
                return bool(proxy.supervisor.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Fault, SupervisorDown):
            return False

    def start(self) -> None:
        """Start supervisord (it daemonizes) and wait for its socket. It runs as whoever starts
        the lab: as root, it runs each node as the lab user (the config's `user=`) but the
        load balancers, whose keepalived moves the vIP."""
        binary = str(install.current().bin / "supervisord")
        subprocess.run([binary, "-c", str(self.paths.supervisor_conf)], check=True)
        deadline = time.monotonic() + 20
        while not self.running():
            if time.monotonic() > deadline:
                raise SupervisorDown(
                    f"supervisord did not come up in 20 s; see {self.paths.logs}/supervisord.log"
                )
            time.sleep(0.2)

    def update(self) -> list[str]:
        """Apply a changed supervisord config: add new nodes, restart changed ones."""
        with self._proxy() as proxy:
            added, changed, removed = proxy.supervisor.reloadConfig()[0]
            for name in removed:
                proxy.supervisor.stopProcess(name)
                proxy.supervisor.removeProcessGroup(name)
            for name in changed:
                proxy.supervisor.stopProcess(name)
                proxy.supervisor.removeProcessGroup(name)
                proxy.supervisor.addProcessGroup(name)
            for name in added:
                proxy.supervisor.addProcessGroup(name)
        return cast(list[str], added + changed + removed)

    def processes(self) -> dict[str, ProcessInfo]:
        if not self.running():
            return {}
        with self._proxy() as proxy:
            infos = proxy.supervisor.getAllProcessInfo()
        return {
            p["name"]: ProcessInfo(p["name"], p["statename"], p["pid"], p["description"])
            for p in infos
        }

    def stop_node(self, name: str, wait: bool = True) -> None:
        """Stop NAME; a node that is not running is already stopped."""
        with self._proxy() as proxy:
            try:
                proxy.supervisor.stopProcess(name, wait)
            except xmlrpc.client.Fault as exc:
                if "NOT_RUNNING" not in exc.faultString:
                    raise

    def start_node(self, name: str) -> None:
        with self._proxy() as proxy:
            if proxy.supervisor.getProcessInfo(name)["statename"] != "RUNNING":
                proxy.supervisor.startProcess(name)

    def restart_node(self, name: str) -> None:
        with self._proxy() as proxy:
            if proxy.supervisor.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING"):
                proxy.supervisor.stopProcess(name)
            proxy.supervisor.startProcess(name)

    def signal_node(self, name: str, signame: str) -> None:
        with self._proxy() as proxy:
            proxy.supervisor.signalProcess(name, signame)

    def shutdown(self, timeout: float = 120) -> None:
        """Stop every node in reverse start order, then supervisord itself."""
        if not self.running():
            return
        pid_file = self.paths.run / "supervisord.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        with self._proxy() as proxy:
            proxy.supervisor.shutdown()
        deadline = time.monotonic() + timeout
        while pid and pid_alive(pid):
            if time.monotonic() > deadline:
                raise SupervisorDown(f"supervisord (pid {pid}) did not stop in {timeout:.0f} s")
            time.sleep(0.2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not read its status yet.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def postmaster_pid(pgdata: Path) -> int | None:
    """The postmaster's pid from its lock file, if that process is alive."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def stop_orphan_postmasters(topology: Topology, paths: LabPaths, timeout: float = 30) -> list[int]:
    """Postgres outlives a killed Patroni: stop any postmaster left behind (fast shutdown)."""
    stopped = []
    for node in topology.of_kind("postgres"):
        pid = postmaster_pid(paths.pgdata(node.name))
        if pid is None:
            continue
        os.kill(pid, signal.SIGINT)
        stopped.append(pid)
    deadline = time.monotonic() + timeout
    for pid in stopped:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    return stopped
