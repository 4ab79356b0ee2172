"""Choose the runtime: the one asked for (RUNTIME / REVIEWLAB_RUNTIME), else the one running."""

from __future__ import annotations

import os

from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import (
    DATA_DIR_ENV,
    RUNTIME_ENV,
    RUNTIMES,
    Topology,
    TopologyError,
)

from reviewlab_lab.runtimes.base import (
    NODE_ACTIONS,
    NODE_ENV,
    NodeProcess,
    Runtime,
    RuntimeUnavailable,
    SwitchFailed,
)

__all__ = [
    "NODE_ACTIONS",
    "NodeProcess",
    "Runtime",
    "RuntimeUnavailable",
    "SwitchFailed",
    "activate",
    "of",
    "refuse_if_other_runs",
]


def of(topology: Topology) -> Runtime:
    """The driver for the runtime TOPOLOGY was loaded for."""
    from reviewlab_lab.runtimes.compose import ComposeRuntime
    from reviewlab_lab.runtimes.native import NativeRuntime

    if topology.lab.runtime.name == "compose":
        return ComposeRuntime(topology)
    return NativeRuntime(topology)


def refuse_if_other_runs(runtime: Runtime) -> None:
    """Both runtimes publish the same addresses: only one runs at a time."""
    if runtime.running():
        return
    for other in RUNTIMES:
        if other != runtime.name and of(lab_topology.load(runtime=other)).running():
            topology = runtime.topology
            www = topology.nodes[topology.services["www"]]
            raise RuntimeUnavailable(
                f"the {'Compose' if other == 'compose' else 'native'} lab is running and holds "
                f"the lab's addresses (the vIP {www.host_address}:{www.port}): stop it with "
                f"`make down RUNTIME={other}` first"
            )


def detect() -> str:
    """The runtime whose lab is up on this machine; native when none is."""
    for name in ("native", "compose"):
        if of(lab_topology.load(runtime=name)).running():
            return name
    return "native"


def activate(requested: str | None = None) -> Topology:
    """Pick the runtime for this process and return the topology as that runtime runs it.

    Inside a lab node the environment already says which runtime it is. On the machine, the
    host keeps a Compose lab's state (a copy of its secrets) apart from the native lab's.
    """
    name = requested or os.environ.get(RUNTIME_ENV) or detect()
    if name not in RUNTIMES:
        raise TopologyError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIMES)}")
    os.environ[RUNTIME_ENV] = name
    if name == "compose" and not os.environ.get(NODE_ENV) and not os.environ.get(DATA_DIR_ENV):
        native = lab_topology.load(runtime="native")
        os.environ[DATA_DIR_ENV] = str(native.lab.data_dir / "compose")
    lab_topology.current.cache_clear()
    return lab_topology.current()


def on_host(topology: Topology) -> bool:
    """True for the machine's own programs driving a Compose lab from outside."""
    return topology.lab.runtime.name == "compose" and not os.environ.get(NODE_ENV)
