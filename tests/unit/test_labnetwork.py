"""No command probes a lab network that is not on this machine (read from `ip addr`, no packet)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from reviewlab_common.topology import current, load
from reviewlab_lab import labnetwork, status
from reviewlab_lab.errors import LabFailed

# `ip -o -4 addr show` on a machine with Docker installed but no Compose lab up.
WITHOUT_BRIDGE = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever
5: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever
"""
WITH_BRIDGE = WITHOUT_BRIDGE + (
    "9: br-3f2a    inet 172.30.0.1/24 brd 172.30.0.255 scope global br-3f2a\\       valid_lft\n"
)
# Inside a node's container: its own address on the bridge.
IN_A_CONTAINER = (
    "1: lo    inet 127.0.0.1/8 scope host lo\n7: eth0    inet 172.30.0.11/24 scope global eth0\n"
)


def test_interfaces_are_read_from_ip_addr() -> None:
    assert labnetwork.interfaces(WITH_BRIDGE) == [
        ipaddress.IPv4Interface(a)
        for a in ("127.0.0.1/8", "192.0.2.2/24", "172.17.0.1/16", "172.30.0.1/24")
    ]


@pytest.mark.parametrize(
    ("runtime", "shown", "expected"),
    [
        ("compose", WITHOUT_BRIDGE, False),
        ("compose", WITH_BRIDGE, True),
        ("compose", IN_A_CONTAINER, True),
        ("native", WITHOUT_BRIDGE, True),
    ],
)
def test_the_lab_network_is_present_only_on_an_interface(
    runtime: str, shown: str, expected: bool
) -> None:
    network = load(runtime=runtime).lab.runtime.network
    assert labnetwork.present(network, labnetwork.interfaces(shown)) is expected


def test_compose_status_without_its_bridge_sends_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_traffic(*_: Any, **__: Any) -> Any:
        raise AssertionError("a probe was sent to a network that is not on this machine")

    monkeypatch.setattr(
        labnetwork, "local_interfaces", lambda: labnetwork.interfaces(WITHOUT_BRIDGE)
    )
    monkeypatch.setattr(status.ready, "probe", no_traffic)
    monkeypatch.setattr(status.dnsrecords, "patroni_members", no_traffic)
    monkeypatch.setattr(status.runtimes, "of", no_traffic)
    with pytest.raises(LabFailed, match=r"^Compose is not running: .* 172\.30\.0\.0/24"):
        status.collect(load(runtime="compose"))


def test_the_cli_says_it_in_one_line_with_a_non_zero_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reviewlab_lab import cli, runtimes

    def no_traffic(*_: Any, **__: Any) -> Any:
        raise AssertionError("a probe was sent to a network that is not on this machine")

    for name in (runtimes.RUNTIME_ENV, runtimes.DATA_DIR_ENV, "REVIEWLAB_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        labnetwork, "local_interfaces", lambda: labnetwork.interfaces(WITHOUT_BRIDGE)
    )
    monkeypatch.setattr(status.ready, "probe", no_traffic)
    monkeypatch.setattr(status.dnsrecords, "patroni_members", no_traffic)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main(["--runtime", "compose", "status"])
    finally:
        current.cache_clear()  # the runtime it activated is the next test's no longer
    assert exited.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Compose is not running"), lines


def test_inside_a_node_the_check_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from reviewlab_lab.runtimes.base import NODE_ENV

    def no_ip(*_: Any, **__: Any) -> Any:
        raise AssertionError("the images carry no `ip`")

    monkeypatch.setenv(NODE_ENV, "web-1")
    monkeypatch.setattr(labnetwork, "local_interfaces", no_ip)
    labnetwork.require(load(runtime="compose"))
