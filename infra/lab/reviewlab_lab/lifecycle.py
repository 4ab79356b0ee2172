"""Bring the lab up, take it down, wipe it: the same steps on either runtime."""

from __future__ import annotations

import os
import subprocess
import time

from reviewlab_common import secrets as lab_secrets
from reviewlab_common import tracing
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import kinds, provision, ready, runtimes, secretfile
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.render import Renderer

PROVISION_TIMEOUT_S = 300


def say(text: str) -> None:
    print(text, flush=True)


def slow_factor() -> float:
    return float(os.environ.get("REVIEWLAB_SLOW", "1"))


def _report(node: Node, probe: ready.Probe, elapsed: float) -> None:
    say(f"  ready  {node.name:<12} {node.kind:<9} {node.endpoint:<18} {elapsed:6.1f} s")


def _wait(topology: Topology, kinds: tuple[str, ...]) -> None:
    nodes = [n for n in topology.nodes.values() if n.kind in kinds]
    failed = ready.wait_ready(topology, nodes, slow_factor=slow_factor(), report=_report)
    if failed:
        lines = [f"  {n.name}: {p.detail}" for n, p in failed]
        raise LabFailed(
            "these nodes did not become ready in time:\n"
            + "\n".join(lines)
            + "\nSee `reviewlab logs NODE`; fix, then run `make up` again (it resumes)."
        )


def init(topology: Topology) -> None:
    """Secrets and an owned data directory: what a node needs before rendering anything."""
    from reviewlab_lab.runtimes.native import own_data_dir

    existed = lab_secrets.secrets_path(topology).exists()
    secretfile.ensure(topology)
    own_data_dir(topology, LabPaths.of(topology))
    state = "kept" if existed else "generated"
    say(f"      secrets {state}: {lab_secrets.secrets_path(topology)} (mode 600)")


def provision_all(topology: Topology) -> None:
    """Every provisioning step, with its time; a failure says which step and how to retry."""
    for title, step in provision.steps(topology):
        t0 = time.monotonic()
        try:
            step()
        except Exception as exc:
            raise LabFailed(
                f"provisioning step '{title}' failed: {exc}; run `make up` again to retry"
            ) from exc
        say(f"  done   {title} ({time.monotonic() - t0:.1f} s)")


def up(topology: Topology) -> None:
    started = time.monotonic()
    runtime = runtimes.of(topology)
    say(f"runtime: {runtime.name}")
    runtimes.refuse_if_other_runs(runtime)
    runtime.launch(say)
    say("waiting for the infrastructure nodes (deadline per node, REVIEWLAB_SLOW scales it)")
    _wait(topology, kinds.of_wave(1))
    say("provisioning")
    if runtime.provisions_itself():
        runtime.wait_provisioned(say, PROVISION_TIMEOUT_S * slow_factor())
    else:
        provision_all(topology)
    say("waiting for the web servers and workers")
    _wait(topology, kinds.of_wave(2))
    www = topology.nodes[topology.services["www"]]
    cdn = topology.nodes[topology.services["cdn"]]
    dns = topology.one("dns")
    vip = f"{www.host_address}:{www.port}"
    edge = f"{cdn.host_address}:{cdn.port}"
    watch = ""
    if "console" in topology.services:
        console = topology.nodes[topology.services["console"]]
        watch += f"  console:     http://{topology.fqdn('console')}:{console.port}/\n"
    if tracing.enabled(topology):
        watch += f"  traces:      {tracing.ui_url(topology)}\n"
    say(
        f"\nReview Lab is up ({runtime.name}) in {time.monotonic() - started:.1f} s\n"
        f"  shop (vIP):  http://{vip}/api/reviews    (www.{topology.lab.domain})\n"
        f"  API docs:    http://{vip}/docs\n"
        f"  CDN edge:    http://{edge}/media/...       (cdn.{topology.lab.domain})\n"
        f"  private DNS: dig @{dns.host_address} -p {dns.port} www.{topology.lab.domain}\n"
        f"{watch}"
        f"  next:        reviewlab status | reviewlab token kim | make demo"
    )


def down(topology: Topology) -> None:
    runtime = runtimes.of(topology)
    runtime.shutdown(say)
    say(f"the {runtime.name} lab is down; data kept (`reviewlab reset` wipes it)")


def reset(topology: Topology) -> None:
    runtime = runtimes.of(topology)
    runtime.shutdown(say)
    runtime.wipe(say)


def run_node(topology: Topology, name: str) -> None:
    """Inside a container: render this node's config, then become its process."""
    node = runtimes.of(topology).node(name)
    renderer = Renderer(topology, LabPaths.of(topology))
    renderer.prepare(node)
    renderer.render(node)
    program = renderer.program(node)
    if program.privileged and os.geteuid() == 0:
        # A root process rendered the files its own node writes: they belong to the user its
        # unprivileged part (nginx) runs as.
        paths = LabPaths.of(topology)
        owner = renderer.install.run_user
        for folder in (paths.data(name), paths.node_run(name), paths.logs):
            subprocess.run(["chown", "-R", f"{owner}:", str(folder)], check=True)
    env = {**os.environ, **program.environment}
    argv = program.argv
    os.chdir(LabPaths.of(topology).data(name))
    os.execvpe(argv[0], argv, env)
