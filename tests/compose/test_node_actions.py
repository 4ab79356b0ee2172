"""Acting on a node from the machine under Compose: the vIP's mode, a fault switch, heal-all.

Each of these once ran on the machine's own paths, where the containers never look: the
switch must reach the lb container, the delay switch the web server's, and `chaos heal`
every node. Runs when the Compose lab is up (`make test RUNTIME=compose`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from reviewlab_common import faults
from reviewlab_common.topology import Topology, load
from reviewlab_lab import install, runtimes
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.paths import REPO
from reviewlab_lab.runtimes.compose import ComposeRuntime

from tests.conftest import deadline
from tests.integration.conftest import eventually


@pytest.fixture(scope="module")
def compose(topology: Topology) -> ComposeRuntime:
    runtime = runtimes.of(topology)
    assert isinstance(runtime, ComposeRuntime), "run this suite with RUNTIME=compose"
    return runtime


@pytest.fixture()
def default_mode_after(compose: ComposeRuntime) -> Iterator[None]:
    """Whatever a test does to the vIP, it serves layer l7, round-robin afterwards."""
    yield
    compose.apply_lb_mode(LbMode())


def reviewlab(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(install.current().bin / "reviewlab"), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(timeout),
        check=False,
    )


def served_layer(vip: str) -> str:
    """At l7 the vIP names the upstream it chose; at l4 it passes bytes and adds nothing."""
    reply = httpx.get(f"{vip}/healthz", timeout=5)
    assert reply.status_code == 200, reply.text
    return "l7" if "X-Upstream" in reply.headers else "l4"


def test_the_runtime_switches_the_vip_inside_its_container(
    compose: ComposeRuntime, vip: str, default_mode_after: None
) -> None:
    assert compose.apply_lb_mode(LbMode("l4", "least_conn")) is True
    assert compose.lb_mode() == LbMode("l4", "least_conn")
    assert compose.apply_lb_mode(LbMode("l4", "least_conn")) is False  # nothing to change
    assert served_layer(vip) == "l4"
    assert compose.apply_lb_mode(LbMode()) is True
    assert compose.lb_mode() == LbMode()
    assert served_layer(vip) == "l7"
    shown = reviewlab("lb", "show")
    assert shown.returncode == 0, shown.stderr
    assert "layer l7, algorithm round_robin" in shown.stdout


def test_a_delay_switch_lands_in_the_node_container(compose: ComposeRuntime) -> None:
    web = "web-1"
    inside = str(faults.fault_file(load(runtime="compose"), web))
    try:
        compose.set_delay(web, 250)
        assert compose.read_node_file(web, inside) == faults.switch_text(250)
        done = reviewlab("fault", "delay", web, "0")
        assert done.returncode == 0, done.stderr
        assert compose.read_node_file(web, inside) == faults.switch_text(0)
    finally:
        compose.set_delay(web, 0)


def test_lb_demo_runs_to_the_end_and_leaves_the_vip_as_it_found_it(
    compose: ComposeRuntime, topology: Topology, default_mode_after: None
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reviewlab_lab.lbdemo", "--requests", "60", "--concurrency", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(300),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2. " in done.stdout and "least_conn" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    assert compose.lb_mode() == LbMode()
    for web in topology.of_kind("web"):
        inside = str(faults.fault_file(load(runtime="compose"), web.name))
        assert compose.read_node_file(web.name, inside) in (None, faults.switch_text(0))


def test_chaos_lb_switch_runs_and_switches_back(
    compose: ComposeRuntime, default_mode_after: None
) -> None:
    done = reviewlab("chaos", "run", "lb-switch", "--no-live", "--duration", "4", "--load", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SwitchFailed" not in done.stdout + done.stderr
    assert compose.lb_mode() == LbMode()


def test_chaos_heal_undoes_a_partition_on_every_node(
    compose: ComposeRuntime, topology: Topology
) -> None:
    victim, peer = "worker-2", topology.one("redis").name
    compose.partition(victim, [peer])
    try:
        assert compose.partitioned()
        done = reviewlab("chaos", "heal")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no partition left in place" in done.stdout
        assert not compose.partitioned()
    finally:
        compose.heal(victim, [peer])
    worker = topology.nodes[victim]
    eventually(
        lambda: httpx.get(f"{worker.url}/readyz", timeout=3).status_code == 200,
        within=30,
        what=f"{victim} ready again once healed",
    )
