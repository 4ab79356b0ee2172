"""The lab's own load-balancer pair: each member's keepalived, its process, the segment it
lives on natively, the machine's forward to a Compose vIP, and the member launcher."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from reviewlab_common.topology import load
from reviewlab_lab import composefile, install
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.render import Renderer
from reviewlab_lab.vrrp import keepalived, pair, publish, segment


@pytest.mark.parametrize("runtime", ["native", "compose"])
def test_the_first_member_wins_the_first_election_and_each_checks_its_own_nginx(
    runtime: str,
) -> None:
    topology = load(runtime=runtime)
    first, second = topology.load_balancers()
    one, two = pair.instance(topology, first), pair.instance(topology, second)
    assert one.priority > two.priority
    assert one.peers == (second.address,) and two.peers == (first.address,)
    assert one.vip == two.vip == topology.vip.address
    assert one.check[-1] == f"http://{first.address}:{first.ceiling_port}/"
    interface = segment.MEMBER_INTERFACE if runtime == "native" else pair.CONTAINER_INTERFACE
    assert one.interface == interface
    assert "nopreempt" in keepalived.render(one)


def test_natively_the_members_live_in_namespaces_on_the_topologys_bridge() -> None:
    topology = load(runtime="native")
    vip_segment = pair.native_segment(topology)
    options = topology.lab.runtime.options
    assert (vip_segment.bridge, vip_segment.gateway) == (
        options["vrrp_bridge"],
        options["vrrp_gateway"],
    )
    assert vip_segment.vip == topology.vip.address
    assert [m.name for m in vip_segment.members] == ["lb-1", "lb-2"]
    # No node may sit on the machine's own address on the bridge.
    assert topology.node_at(vip_segment.gateway) is None


@pytest.mark.parametrize("runtime", ["native", "compose"])
def test_a_member_is_one_root_process_running_nginx_and_keepalived(runtime: str) -> None:
    topology = load(runtime=runtime)
    member = topology.load_balancers()[1]
    # Describing a process reads no secret: a renderer without them (the lab may be unmade).
    renderer = Renderer.__new__(Renderer)
    renderer.topology, renderer.paths = topology, LabPaths.of(topology)
    renderer.install = install.current()
    program = renderer.program(member)
    assert program.privileged
    argv = program.argv
    module = argv.index("reviewlab_lab.vrrp.member")
    # What comes before `python -m`: the member's namespace natively, nothing in a container.
    prefix = argv[: module - 2]
    in_namespace = ["/usr/sbin/ip", "netns", "exec", f"reviewlab-{member.name}"]
    assert prefix == (in_namespace if runtime == "native" else [])
    nginx, ka = argv[argv.index("--nginx") + 1], argv[argv.index("--keepalived") + 1]
    assert f"{member.name}.nginx.conf" in nginx
    assert f"{member.name}.keepalived.conf" in ka and ka.startswith(pair.KEEPALIVED)


def test_the_compose_vip_is_forwarded_from_the_machine_and_answered_from_the_gateway() -> None:
    # The ports forwarded are the ones the vIP's kind says are published.
    vip = load(runtime="compose").vip
    assert composefile.published_ports(vip) == [vip.port, vip.ceiling_port] == [8080, 8081]
    output, postrouting = publish.rules("127.0.0.10", [8080, 8081], "172.30.0.10", "172.30.0.254")
    assert output[:2] == ["OUTPUT", "-d"] and "127.0.0.10/32" in output
    assert output[-3:] == ["DNAT", "--to-destination", "172.30.0.10"]
    assert "8080,8081" in output
    assert postrouting[-3:] == ["SNAT", "--to-source", "172.30.0.254"]
    assert all(publish.RULE_TAG in rule for rule in (output, postrouting))


def _launch(tmp_path: Path, nginx: str, keepalived_argv: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "reviewlab_lab.vrrp.member"]
    argv += ["--nginx", nginx, "--keepalived", keepalived_argv]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def test_the_member_stops_when_its_nginx_dies_and_says_so(tmp_path: Path) -> None:
    started = time.monotonic()
    member = _launch(tmp_path, "sh -c 'sleep 0.3; exit 3'", "sleep 30")
    _, err = member.communicate(timeout=20)
    assert member.returncode == 1
    assert "nginx exited" in err
    assert time.monotonic() - started < 10  # its keepalived was stopped, not waited for


def test_a_stopped_member_exits_cleanly(tmp_path: Path) -> None:
    member = _launch(tmp_path, "sleep 30", "sleep 30")
    time.sleep(0.5)
    member.terminate()
    _, err = member.communicate(timeout=20)
    assert member.returncode == 0, err
