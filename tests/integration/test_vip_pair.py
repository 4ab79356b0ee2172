"""The lab's own vIP pair: one member holds the address, both serve the same mode, and the
status and the address agree on who holds it. (A holder killed under load: the chaos test
`lb-kill`; the mechanism on scratch pairs: test_floating_vip.py.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import install, loadbalancer, runtimes

from tests.integration.nodes import Nodes
from tests.integration.test_loadbalancer import Switch


@pytest.fixture()
def lb_mode(nodes: Nodes) -> Iterator[Switch]:
    yield nodes.set_lb
    default = loadbalancer.LbMode()
    nodes.set_lb(default.layer, default.algorithm)


def lab_mode(address: str, port: int | None) -> dict[str, str]:
    reply = httpx.get(f"http://{address}:{port}/lab-mode", timeout=5)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def status() -> list[dict[str, object]]:
    argv = [str(install.current().bin / "reviewlab"), "status", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_one_member_holds_the_vip_and_status_names_it(topology: Topology) -> None:
    vip = topology.vip
    holder = lab_mode(vip.address, vip.ceiling_port)["member"]
    assert holder in vip.members
    assert runtimes.of(topology).vip_holder() == holder
    rows = {str(row["name"]): row for row in status()}
    assert rows[vip.name]["role"] == f"held by {holder}"
    assert str(rows[holder]["role"]).startswith("active ")
    (standby,) = set(vip.members) - {holder}
    assert str(rows[standby]["role"]).startswith("standby ")


def test_a_switch_reaches_both_members(topology: Topology, lb_mode: Switch) -> None:
    lb_mode("l4", "least_conn")
    for member in topology.load_balancers():
        seen = lab_mode(member.address, member.ceiling_port)
        assert (seen["layer"], seen["algorithm"], seen["member"]) == (
            "l4",
            "least_conn",
            member.name,
        )
    lb_mode("l7", "round_robin")
    for member in topology.load_balancers():
        assert lab_mode(member.address, member.ceiling_port)["layer"] == "l7"


def test_the_vip_is_no_process_to_act_on(topology: Topology) -> None:
    argv = [str(install.current().bin / "reviewlab"), "node", "kill", topology.vip.name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "an address, not a process" in done.stderr and "Traceback" not in done.stderr
