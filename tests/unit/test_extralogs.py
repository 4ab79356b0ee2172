"""`reviewlab logs lb.access|lb-1.error|edge-1.access|dns-sync`: the files nodes write."""

from __future__ import annotations

import pytest
from reviewlab_common.topology import load
from reviewlab_lab import extralogs, runtimes


def test_native_logs_are_tailed_from_the_log_directory() -> None:
    topology = load(runtime="native")
    names = extralogs.files(topology)
    assert {"lb.access", "lb-1.error", "lb-2.error", "dns-sync", "edge-1.access"} <= set(names)
    # Both members write the vIP's one access log.
    assert names["lb.access"][0] == ["lb-1", "lb-2"]
    (command,) = extralogs.commands(topology, "lb.access", 20, follow=False)
    assert command == ["tail", "-n", "20", str(topology.lab.data_dir / "logs" / "lb.access.log")]


def test_under_compose_each_writer_is_read_in_its_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(runtimes.NODE_ENV, raising=False)
    topology = load(runtime="compose")
    commands = extralogs.commands(topology, "dns-sync", 5, follow=False)
    writers = [n.name for n in topology.of_kind("postgres")]
    assert len(commands) == len(writers) and all(c[:2] == ["docker", "exec"] for c in commands)
    assert extralogs.commands(topology, "dns-sync", 5, follow=True)[0][-2] == "-F"


def test_under_compose_the_path_is_the_containers_not_the_hosts_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(runtimes.NODE_ENV, raising=False)
    monkeypatch.setenv("REVIEWLAB_RUNTIME", "compose")
    host = runtimes.activate()  # the host's view: its copy of the data lives elsewhere
    inside = load(runtime="compose").lab.data_dir
    assert host.lab.data_dir != inside
    (command,) = extralogs.commands(host, "shield.access", 5, follow=False)
    assert command[:2] == ["docker", "exec"]
    assert command[-1] == str(inside / "logs" / "shield.access.log")
