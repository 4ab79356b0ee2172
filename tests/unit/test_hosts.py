"""`reviewlab hosts`: the marked block in a hosts file, and nothing else, on a temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest
from reviewlab_common.topology import Topology, load
from reviewlab_lab import hosts
from reviewlab_lab.cli import main

OTHERS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n# a comment someone wrote\n"


@pytest.fixture(scope="module", params=["native", "compose"])
def topology(request: pytest.FixtureRequest) -> Topology:
    return load(runtime=request.param)


@pytest.fixture()
def hosts_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(OTHERS)
    return path


def test_the_block_names_www_and_cdn_at_their_host_addresses(topology: Topology) -> None:
    lines = hosts.block(topology).splitlines()
    assert lines[0] == hosts.BEGIN
    assert lines[-1] == hosts.END
    entries = dict(reversed(line.split("\t")) for line in lines[1:-1])
    assert entries == {
        f"{name}.{topology.lab.domain}": topology.nodes[target].host_address
        for name, target in topology.services.items()
    }
    assert {"www", "cdn", "traces"} <= set(topology.services)


def test_install_is_idempotent_and_keeps_every_other_line(
    topology: Topology, hosts_file: Path
) -> None:
    assert hosts.install(topology, hosts_file) is True
    once = hosts_file.read_text()
    assert once == OTHERS + hosts.block(topology)
    assert hosts.install(topology, hosts_file) is False
    assert hosts_file.read_text() == once
    assert hosts.state(topology, hosts_file).current


def test_remove_restores_the_file_byte_for_byte(topology: Topology, hosts_file: Path) -> None:
    hosts.install(topology, hosts_file)
    hosts_file.write_text(hosts_file.read_text() + "10.0.0.5\tprinter\n")
    assert hosts.remove(hosts_file) is True
    assert hosts_file.read_text() == OTHERS + "10.0.0.5\tprinter\n"
    assert hosts.remove(hosts_file) is False
    assert hosts.state(topology, hosts_file).installed is None


def test_an_older_block_is_replaced_where_it_stands(topology: Topology, hosts_file: Path) -> None:
    stale = f"{hosts.BEGIN}\n127.0.0.99\twww.{topology.lab.domain}\n{hosts.END}\n"
    hosts_file.write_text(OTHERS + stale + "10.0.0.5\tprinter\n")
    assert not hosts.state(topology, hosts_file).current
    assert hosts.install(topology, hosts_file) is True
    assert hosts_file.read_text() == OTHERS + hosts.block(topology) + "10.0.0.5\tprinter\n"


def test_a_file_without_a_final_newline_keeps_its_last_line(
    topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1\tlocalhost")
    hosts.install(topology, path)
    assert path.read_text() == "127.0.0.1\tlocalhost\n" + hosts.block(topology)


def test_a_block_without_its_end_is_left_alone(topology: Topology, hosts_file: Path) -> None:
    broken = OTHERS + f"{hosts.BEGIN}\n127.0.0.99\twww.{topology.lab.domain}\n"
    hosts_file.write_text(broken)
    with pytest.raises(hosts.HostsError, match="no '# END reviewlab'"):
        hosts.install(topology, hosts_file)
    assert hosts_file.read_text() == broken


def test_the_cli_shows_installs_and_removes(
    hosts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--runtime", "native", "hosts", "show", "--file", str(hosts_file)])
    assert "not installed" in capsys.readouterr().out
    main(["--runtime", "native", "hosts", "install", "--file", str(hosts_file)])
    assert "installed" in capsys.readouterr().out
    main(["--runtime", "native", "hosts", "show", "--file", str(hosts_file)])
    shown = capsys.readouterr().out
    assert hosts.BEGIN in shown and f"installed in {hosts_file}" in shown
    main(["--runtime", "native", "hosts", "remove", "--file", str(hosts_file)])
    assert "removed" in capsys.readouterr().out
    assert hosts_file.read_text() == OTHERS


def test_an_unwritable_file_is_one_line_error(
    topology: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_dir = tmp_path / "no-such-dir" / "hosts"
    with pytest.raises(SystemExit) as exited:
        main(["--runtime", "native", "hosts", "install", "--file", str(missing_dir)])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write") and "\n" not in err
