"""The native runtime: every node a process on its own 127.0.0.x address, under supervisord."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from reviewlab_common.topology import Topology

from reviewlab_lab import kinds, secretfile
from reviewlab_lab.files import write_if_changed
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.procs import Supervisor, postmaster_pid, run_user_ids, stop_orphan_postmasters
from reviewlab_lab.render import Program, Renderer
from reviewlab_lab.runtimes import lbswitch
from reviewlab_lab.runtimes.base import NodeProcess, Runtime, Say
from reviewlab_lab.vrrp import pair as vrrp_pair
from reviewlab_lab.vrrp import segment


def own_data_dir(topology: Topology, paths: LabPaths) -> None:
    """The data directory belongs to the unprivileged user that runs the nodes."""
    for folder in (
        paths.root,
        paths.conf,
        paths.run,
        paths.logs,
        paths.faults,
        paths.root / "data",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        uid, gid = run_user_ids(topology)
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(paths.root)], check=True)
    paths.faults.chmod(0o755)


def supervisor_config(
    paths: LabPaths, programs: list[Program], run_user: pwd.struct_passwd | None = None
) -> str:
    """The supervisord config that runs every node of the lab. With RUN_USER (supervisord runs
    as root), every program but the privileged ones runs as that user."""
    lines = [
        "; Review Lab's process supervisor: rendered by `reviewlab up` from infra/topology.toml.",
        "[unix_http_server]",
        f"file={paths.supervisor_socket}",
        "chmod=0770",
        "[supervisord]",
        f"logfile={paths.logs / 'supervisord.log'}",
        f"pidfile={paths.run / 'supervisord.pid'}",
        f"childlogdir={paths.logs}",
        "nodaemon=false",
        "minfds=4096",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{paths.supervisor_socket}",
    ]
    for program in programs:
        node = program.node
        environment = dict(program.environment)
        as_user = run_user is not None and not program.privileged
        if as_user:
            assert run_user is not None
            home = {"HOME": run_user.pw_dir, "USER": run_user.pw_name, "LOGNAME": run_user.pw_name}
            environment = home | environment
        env = ",".join(f'{k}="{v}"' for k, v in sorted(environment.items()))
        lines += [
            f"[program:{node.name}]",
            f"command={program.command}",
            f"directory={paths.data(node.name)}",
            f"priority={kinds.of(node).stop_priority}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=1000",
            f"stopsignal={program.stop_signal}",
            f"stopwaitsecs={program.stop_seconds}",
            f"stopasgroup={str(program.stop_as_group).lower()}",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={paths.log(node.name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
        ]
        if as_user:
            assert run_user is not None
            lines.append(f"user={run_user.pw_name}")
        if env:
            lines.append(f"environment={env}")
    return "\n".join(lines) + "\n"


class NativeRuntime(Runtime):
    name = "native"

    def __init__(self, topology: Topology) -> None:
        super().__init__(topology)
        self.paths = LabPaths.of(topology)
        self.supervisor = Supervisor(topology, self.paths)

    def running(self) -> bool:
        return self.supervisor.running()

    def provisions_itself(self) -> bool:
        return False

    def launch(self, say: Say) -> None:
        secretfile.ensure(self.topology)
        own_data_dir(self.topology, self.paths)
        renderer = Renderer(self.topology, self.paths)
        programs = []
        for node in self.topology.nodes.values():
            if not kinds.of(node).runs:
                continue
            renderer.prepare(node)
            renderer.render(node)
            programs.append(renderer.program(node))
        run_user = pwd.getpwnam(renderer.install.run_user) if os.geteuid() == 0 else None
        conf_changed = write_if_changed(
            self.paths.supervisor_conf, supervisor_config(self.paths, programs, run_user)
        )
        self._ensure_segment(say)
        own_data_dir(self.topology, self.paths)
        if not self.supervisor.running():
            say(f"starting {len(programs)} nodes under supervisord ({self.paths.supervisor_conf})")
            self.supervisor.start()
            return
        touched = self.supervisor.update() if conf_changed else []
        # A node that does not run yet (one another `up` added) is started below, not signalled.
        running = {n for n, i in self.supervisor.processes().items() if i.state == "RUNNING"}
        for name in sorted((renderer.changed - set(touched)) & running):
            hup = kinds.of(self.topology.nodes[name]).reload_on_hup
            say(f"  config of {name} changed: " + ("reloading" if hup else "restarting"))
            if hup:
                self.supervisor.signal_node(name, "HUP")
            else:
                self.supervisor.restart_node(name)
        for name in touched:
            say(f"  applied new supervisor settings for {name}")
        for name, info in self.supervisor.processes().items():
            if info.state not in ("RUNNING", "STARTING"):
                say(f"  {name} was {info.state}: starting it")
                self.supervisor.start_node(name)

    def shutdown(self, say: Say) -> None:
        if self.supervisor.running():
            say("stopping every node (reverse start order)")
            self.supervisor.shutdown()
        for pid in stop_orphan_postmasters(self.topology, self.paths):
            say(f"  stopped a Postgres postmaster that outlived Patroni (pid {pid})")
        vip_segment = vrrp_pair.native_segment(self.topology)
        if segment.exists(vip_segment):
            segment.remove(vip_segment)
            say(f"  removed the vIP's bridge {vip_segment.bridge} and the members' namespaces")

    def _ensure_segment(self, say: Say) -> None:
        """The bridge and namespaces the load balancers run in, before they start."""
        vip_segment = vrrp_pair.native_segment(self.topology)
        if segment.exists(vip_segment):
            return
        segment.create(vip_segment)
        names = ", ".join(m.name for m in vip_segment.members)
        say(f"made the vIP's bridge {vip_segment.bridge}: a network namespace for each of {names}")

    def wipe(self, say: Say) -> None:
        for folder in (self.paths.root / "data", self.paths.conf, self.paths.run, self.paths.logs):
            shutil.rmtree(folder, ignore_errors=True)
        say(f"wiped the lab's data under {self.paths.root} (secrets kept)")

    def processes(self) -> dict[str, NodeProcess]:
        return {
            name: NodeProcess(name, _frozen_or(info.state.lower(), info.pid), info.pid or None)
            for name, info in self.supervisor.processes().items()
        }

    def postmaster_pid(self, name: str) -> int | None:
        """Postgres runs as Patroni's child: its own pid, from its lock file."""
        return postmaster_pid(self.paths.pgdata(name))

    def start(self, name: str) -> None:
        self.supervisor.start_node(name)

    def stop(self, name: str) -> None:
        self.supervisor.stop_node(name)

    def restart(self, name: str) -> None:
        self.supervisor.restart_node(name)

    def kill(self, name: str) -> None:
        # A node loss: every process of the node dies at once. Children outlive a killed
        # parent (Postgres outlives Patroni, nginx workers their master and keep its port).
        below = self.node_pids(name)
        self.supervisor.signal_node(name, "KILL")
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def lose(self, name: str) -> None:
        # Frozen first, the node never sees the stop signal supervisord sends; then SIGKILL.
        # supervisord counts the death as the stop it asked for and does not restart it.
        below = self.node_pids(name)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self.supervisor.stop_node(name, wait=False)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def pause(self, name: str) -> None:
        self.supervisor.signal_node(name, "STOP")

    def resume(self, name: str) -> None:
        self.supervisor.signal_node(name, "CONT")

    def limit_cpu(self, name: str, cores: float | None) -> None:
        from reviewlab_lab import cpucap

        if cores is None:
            cpucap.lift(name, self.node_pids(name))
        else:
            cpucap.limit(name, self.node_pids(name), cores)

    def node_pids(self, name: str) -> list[int]:
        """The node's process and everything below it (Postgres, once re-parented, too)."""
        from reviewlab_lab import netcut

        roots = [p for p in (self.supervisor_pid(name), self.postmaster_pid(name)) if p]
        return sorted({pid for root in roots for pid in netcut.descendants(root)})

    def supervisor_pid(self, name: str) -> int | None:
        process = self.processes().get(name)
        return process.pid if process else None

    def partition(self, name: str, peers: list[str]) -> None:
        if self.node(name).kind == "lb":
            # A member lives in a namespace of its own: the cut is there, on its peers' addresses.
            segment.cut(vrrp_pair.native_segment(self.topology), name, peers)
            return
        # Loopback traffic all leaves from 127.0.0.1: the cut follows processes, not addresses.
        from reviewlab_lab import netcut

        def side(group: str, names: list[str]) -> netcut.Side:
            pids = [pid for n in names for pid in self.node_pids(n)]
            return netcut.Side(group, pids, [self.node(n).address for n in names])

        netcut.cut(name, side("isolated", [name]), side("peers", peers))

    def heal(self, name: str, peers: list[str]) -> None:
        # One node is cut at a time natively, so undoing it undoes every cut.
        self.heal_all()

    def heal_all(self) -> None:
        from reviewlab_lab import netcut

        netcut.heal()
        vip_segment = vrrp_pair.native_segment(self.topology)
        if segment.exists(vip_segment):
            segment.heal(vip_segment)

    def partitioned(self) -> bool:
        from reviewlab_lab import netcut

        vip_segment = vrrp_pair.native_segment(self.topology)
        cut_members = segment.exists(vip_segment) and bool(segment.cut_members(vip_segment))
        return netcut.active() or cut_members

    def vip_carriers(self) -> list[str]:
        vip_segment = vrrp_pair.native_segment(self.topology)
        return segment.carriers(vip_segment) if segment.exists(vip_segment) else []

    def apply_lb_mode(self, mode: LbMode) -> bool:
        return lbswitch.apply(self.topology, self.paths, mode, self.topology.load_balancers())

    def log_command(self, name: str, lines: int, follow: bool) -> list[str]:
        path = self.paths.log(name)
        return ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]


def _frozen_or(state: str, pid: int) -> str:
    """supervisord calls a SIGSTOPped process running; /proc/<pid>/stat says 'T' (stopped)."""
    if state != "running" or not pid:
        return state
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return state
    return "paused" if stat.rsplit(")", 1)[-1].split()[0] == "T" else state
