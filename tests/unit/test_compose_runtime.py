"""What the Compose runtime asks Docker and the kernel to do, read without a Docker daemon.

The commands are recorded instead of run: the Compose suite (tests/compose) runs them for
real; here each is checked for the container, namespace and arguments it must name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from reviewlab_common import faults
from reviewlab_common.topology import load
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.runtimes import SwitchFailed
from reviewlab_lab.runtimes import compose as compose_module
from reviewlab_lab.runtimes.base import NODE_ENV, NodeProcess
from reviewlab_lab.runtimes.compose import PARTITION_TAG, ComposeRuntime
from reviewlab_lab.runtimes.lbswitch import RELOADED

PIDS = {"reviews-1a": 4101, "worker-2": 4202}


class Recorder:
    """Stands in for subprocess.run in the Compose driver: records argv, answers as told."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.copied: dict[str, str] = {}
        self.rules: dict[int, list[str]] = {pid: [] for pid in PIDS.values()}
        self.answer = subprocess.CompletedProcess[str]([], 0, "", "")

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        if argv[:2] == ["docker", "cp"]:
            self.copied[argv[3]] = Path(argv[2]).read_text()
        if argv[0] == "nsenter":
            pid, rule = int(argv[2]), argv[6:]
            if rule[:1] == ["-I"]:
                # iptables lists an address as a /32 network, as the heal then reads it
                spec = [f"{w}/32" if w.count(".") == 3 else w for w in rule[1:]]
                self.rules[pid].append(" ".join(["-A", *spec]))
            if rule[:1] == ["-S"]:
                listing = "\n".join(["-P INPUT ACCEPT", *self.rules[pid]])
                return subprocess.CompletedProcess(argv, 0, listing, "")
            if rule[:1] == ["-D"]:
                self.rules[pid].remove(" ".join(["-A", *rule[1:]]))
        return self.answer


@pytest.fixture()
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.delenv(NODE_ENV, raising=False)  # the machine's side of the lab
    found = Recorder()
    monkeypatch.setattr(compose_module.subprocess, "run", found)
    return found


@pytest.fixture()
def runtime(monkeypatch: pytest.MonkeyPatch) -> ComposeRuntime:
    driver = ComposeRuntime(load(runtime="compose"))
    running = {n: NodeProcess(n, "running", pid) for n, pid in PIDS.items()}
    monkeypatch.setattr(driver, "processes", lambda: running)
    return driver


def test_a_partition_cuts_the_peers_inside_the_nodes_namespace(
    runtime: ComposeRuntime, recorder: Recorder
) -> None:
    peers = ["etcd-1", "reviews-1b"]
    runtime.partition("reviews-1a", peers)
    assert all(call[:6] == ["nsenter", "--target", "4101", "--net", "iptables", "-w"]
               for call in recorder.calls)  # fmt: skip
    rules = recorder.rules[4101]
    for peer in peers:
        address = runtime.node(peer).address
        assert f"-A OUTPUT -d {address}/32 -m comment --comment {PARTITION_TAG} -j DROP" in rules
        assert f"-A INPUT -s {address}/32 -m comment --comment {PARTITION_TAG} -j DROP" in rules
    # Clients are not peers: nothing names the web tier or the machine.
    assert len(rules) == 2 * len(peers)
    assert runtime.partitioned()


def test_heal_all_removes_every_cut_of_every_node(
    runtime: ComposeRuntime, recorder: Recorder
) -> None:
    runtime.partition("reviews-1a", ["etcd-1"])
    runtime.partition("worker-2", ["redis"])
    runtime.heal_all()
    assert recorder.rules == {4101: [], 4202: []}
    assert not runtime.partitioned()


def test_the_vip_switches_inside_the_lb_container(
    runtime: ComposeRuntime, recorder: Recorder
) -> None:
    recorder.answer = subprocess.CompletedProcess([], 0, f"load balancer: ...\n{RELOADED}\n", "")
    assert runtime.apply_lb_mode(LbMode("l4", "least_conn")) is True
    # Every member of the pair, each in its own container: both serve the same mode.
    for lb, call in zip(("lb-1", "lb-2"), recorder.calls[-2:], strict=True):
        argv = ["docker", "exec", runtime.container(lb), "reviewlab", "lb", "set", "--layer", "l4"]
        assert call == [*argv, "--algorithm", "least_conn", "--drain", "none"]
    runtime.apply_lb_mode(LbMode("l4", "least_conn", drained=("web-2", "web-3")))
    assert recorder.calls[-1][-2:] == ["--drain", "web-2,web-3"]
    recorder.answer = subprocess.CompletedProcess([], 0, "...\nnothing to change\n", "")
    assert runtime.apply_lb_mode(LbMode()) is False


def test_a_refused_switch_is_a_switch_failed_with_nginx_words(
    runtime: ComposeRuntime, recorder: Recorder
) -> None:
    recorder.answer = subprocess.CompletedProcess(
        [], 1, "", "reviewlab lb set: nginx rejected the config for layer l4"
    )
    with pytest.raises(SwitchFailed, match=r"^nginx rejected the config for layer l4$"):
        runtime.apply_lb_mode(LbMode("l4", "round_robin"))


def test_a_delay_switch_is_copied_into_the_container_in_the_switch_format(
    runtime: ComposeRuntime, recorder: Recorder
) -> None:
    runtime.set_delay("web-2", 300)
    inside = faults.fault_file(load(runtime="compose"), "web-2")
    assert str(inside).startswith("/var/lib/reviewlab/run/faults/")  # the container's own path
    assert recorder.copied == {f"{runtime.container('web-2')}:{inside}": faults.switch_text(300)}


def test_the_vip_mode_is_read_from_the_lb_container(
    runtime: ComposeRuntime, recorder: Recorder
) -> None:
    recorder.answer = subprocess.CompletedProcess([], 0, '{"layer": "l4", "algorithm": "random"}')
    assert runtime.lb_mode() == LbMode("l4", "random")
    lb = runtime.container("lb-1")
    assert recorder.calls[-1] == [
        "docker",
        "exec",
        lb,
        "cat",
        "/var/lib/reviewlab/conf/lb-mode.json",
    ]
