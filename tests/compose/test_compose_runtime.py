"""What only the Compose runtime has: the committed Compose file, Docker's view of the nodes,
and one runtime at a time. Runs when the Compose lab is up (`make test RUNTIME=compose`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import install, kinds, runtimes
from reviewlab_lab.composefile import COMPOSE_FILE
from reviewlab_lab.paths import REPO
from reviewlab_lab.runtimes.compose import ComposeRuntime

from tests.integration.conftest import eventually


@pytest.fixture(scope="module")
def compose(topology: Topology) -> ComposeRuntime:
    runtime = runtimes.of(topology)
    assert isinstance(runtime, ComposeRuntime), "run this suite with RUNTIME=compose"
    return runtime


@pytest.mark.parametrize("command", [["docker", "compose"], ["docker-compose"]])
def test_the_committed_compose_file_passes_compose_config(command: list[str]) -> None:
    """Compose v2 (what users type) and Debian's v1 both accept the generated file."""
    assert shutil.which(command[0]), f"{command[0]} is not installed: run `make docker`"
    done = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def container_view(compose: ComposeRuntime, name: str) -> list[str]:
    """Docker's health verdict, restart policy and lab-network address of a node's container."""
    return subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{.State.Health.Status}} {{.HostConfig.RestartPolicy.Name}} "
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            compose.container(name),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()


def test_every_node_is_a_healthy_container_with_a_restart_policy(
    topology: Topology, compose: ComposeRuntime
) -> None:
    # Every node but the vIP, an address the load balancers' containers pass between them.
    assert [n.name for n in topology.nodes.values() if not kinds.of(n).runs] == ["vip"]
    for node in (n for n in topology.nodes.values() if kinds.of(n).runs):
        # A container another test restarted is "starting" until its next check (every 5 s).
        found = eventually(
            lambda node=node: (v := container_view(compose, node.name))[0] == "healthy" and v,
            within=60,
            every=1.0,
            what=f"{node.name} healthy",
        )
        assert found == ["healthy", "unless-stopped", node.address], (node.name, found)


def test_the_native_runtime_refuses_to_start_while_compose_holds_the_addresses() -> None:
    done = subprocess.run(
        [str(install.current().bin / "reviewlab"), "--runtime", "native", "up"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "the Compose lab is running" in done.stderr
    assert "make down RUNTIME=compose" in done.stderr
