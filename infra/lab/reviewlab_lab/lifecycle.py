"""Bring the native lab up, take it down, wipe it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import provision, ready
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.procs import Supervisor, run_user_ids, stop_orphan_postmasters
from reviewlab_lab.render import Renderer, supervisor_config, write_if_changed

FIRST_WAVE = ("dns", "etcd", "redis", "minio", "postgres", "edge", "lb")
SECOND_WAVE = ("web", "worker")
# Nodes that re-read their config on SIGHUP instead of a restart.
RELOAD_ON_HUP = ("lb", "edge")


def say(text: str) -> None:
    print(text, flush=True)


def slow_factor() -> float:
    return float(os.environ.get("REVIEWLAB_SLOW", "1"))


def _own(topology: Topology, paths: LabPaths) -> None:
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


def _report(node: Node, probe: ready.Probe, elapsed: float) -> None:
    say(f"  ready  {node.name:<12} {node.kind:<9} {node.endpoint:<18} {elapsed:6.1f} s")


def _wait(topology: Topology, kinds: tuple[str, ...], paths: LabPaths) -> None:
    nodes = [n for n in topology.nodes.values() if n.kind in kinds]
    failed = ready.wait_ready(topology, nodes, slow_factor=slow_factor(), report=_report)
    if failed:
        lines = [f"  {n.name}: {p.detail}\n    log: {paths.log(n.name)}" for n, p in failed]
        raise LabFailed(
            "these nodes did not become ready in time:\n"
            + "\n".join(lines)
            + "\nSee `reviewlab logs NODE`; fix, then run `make up` again (it resumes)."
        )


def init(topology: Topology) -> None:
    """Secrets and an owned data directory: what `up` needs before rendering anything."""
    paths = LabPaths.of(topology)
    existed = lab_secrets.secrets_path(topology).exists()
    lab_secrets.ensure(topology)
    _own(topology, paths)
    state = "kept" if existed else "generated"
    say(
        f"      secrets {state}: {lab_secrets.secrets_path(topology)} "
        f"(mode 600, {topology.lab.run_user})"
    )


def up(topology: Topology) -> None:
    started = time.monotonic()
    paths = LabPaths.of(topology)
    lab_secrets.ensure(topology)
    _own(topology, paths)
    renderer = Renderer(topology, paths)
    programs = renderer.programs()
    conf_changed = write_if_changed(
        paths.supervisor_conf, supervisor_config(topology, paths, programs)
    )
    _own(topology, paths)
    supervisor = Supervisor(topology, paths)
    if not supervisor.running():
        say(f"starting {len(programs)} nodes under supervisord ({paths.supervisor_conf})")
        supervisor.start()
    else:
        touched = supervisor.update() if conf_changed else []
        for name in sorted(renderer.changed - set(touched)):
            node = topology.nodes[name]
            say(
                f"  config of {name} changed: "
                + ("reloading" if node.kind in RELOAD_ON_HUP else "restarting")
            )
            if node.kind in RELOAD_ON_HUP:
                supervisor.signal_node(name, "HUP")
            else:
                supervisor.restart_node(name)
        for name in touched:
            say(f"  applied new supervisor settings for {name}")
        for name, info in supervisor.processes().items():
            if info.state not in ("RUNNING", "STARTING"):
                say(f"  {name} was {info.state}: starting it")
                supervisor.start_node(name)
    say("waiting for the infrastructure nodes (deadline per node, REVIEWLAB_SLOW scales it)")
    _wait(topology, FIRST_WAVE, paths)
    say("provisioning")
    for title, step in provision.steps(topology):
        t0 = time.monotonic()
        try:
            step()
        except Exception as exc:
            raise LabFailed(
                f"provisioning step '{title}' failed: {exc}\nRun `make up` again to retry."
            ) from exc
        say(f"  done   {title} ({time.monotonic() - t0:.1f} s)")
    say("waiting for the web servers and workers")
    _wait(topology, SECOND_WAVE, paths)
    www = topology.nodes[topology.services["www"]]
    cdn = topology.nodes[topology.services["cdn"]]
    dns = topology.one("dns")
    say(
        f"\nReview Lab is up in {time.monotonic() - started:.1f} s\n"
        f"  shop (vIP):  http://{www.endpoint}/api/reviews    (www.{topology.lab.domain})\n"
        f"  API docs:    http://{www.endpoint}/docs\n"
        f"  CDN edge:    http://{cdn.endpoint}/media/...       (cdn.{topology.lab.domain})\n"
        f"  private DNS: dig @{dns.address} -p {dns.port} www.{topology.lab.domain}\n"
        f"  next:        reviewlab status | reviewlab token kim | make demo"
    )


def down(topology: Topology) -> None:
    paths = LabPaths.of(topology)
    supervisor = Supervisor(topology, paths)
    if supervisor.running():
        say("stopping every node (reverse start order)")
        supervisor.shutdown()
    orphans = stop_orphan_postmasters(topology, paths)
    for pid in orphans:
        say(f"  stopped a Postgres postmaster that outlived Patroni (pid {pid})")
    say(f"the lab is down; data kept in {paths.root} (`reviewlab reset` wipes it)")


def reset(topology: Topology) -> None:
    down(topology)
    paths = LabPaths.of(topology)
    for folder in (paths.root / "data", paths.conf, paths.run, paths.logs):
        shutil.rmtree(folder, ignore_errors=True)
    say(f"wiped the lab's data under {paths.root} (secrets kept)")
