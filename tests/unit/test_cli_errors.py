"""The CLI reports every failure as one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from reviewlab_lab.paths import TOPOLOGY_PATH


@pytest.fixture()
def lab_down(tmp_path: Path) -> dict[str, str]:
    """The real topology with an empty data directory: a lab that is not running."""
    text = TOPOLOGY_PATH.read_text()
    text = re.sub(r'(?m)^data_dir = ".*"$', f'data_dir = "{tmp_path}"', text)
    topology = tmp_path / "topology.toml"
    topology.write_text(text)
    return {
        **os.environ,
        "REVIEWLAB_TOPOLOGY": str(topology),
        "REVIEWLAB_RUNTIME": "native",
        "REVIEWLAB_DEBUG": "",
    }


def reviewlab(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reviewlab_lab.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]


def test_node_control_with_the_lab_down_says_how_to_start_it(lab_down: dict[str, str]) -> None:
    result = reviewlab(lab_down, "node", "stop", "web-1")
    assert_one_line_error(result, "make up")


def test_an_unknown_node_is_one_line(lab_down: dict[str, str]) -> None:
    assert_one_line_error(reviewlab(lab_down, "node", "kill", "web-9"), "no node named 'web-9'")


def test_a_broken_topology_is_one_line(lab_down: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "topology.toml").write_text("[lab\n")
    assert_one_line_error(reviewlab(lab_down, "status"), "not valid TOML")


def test_a_delay_on_a_worker_is_accepted(lab_down: dict[str, str], tmp_path: Path) -> None:
    result = reviewlab(lab_down, "fault", "delay", "worker-1", "300")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "faults" / "worker-1.json").exists()
    assert reviewlab(lab_down, "fault", "delay", "worker-1", "0").returncode == 0
    assert not (tmp_path / "run" / "faults" / "worker-1.json").exists()


def test_a_delay_on_a_database_is_refused(lab_down: dict[str, str]) -> None:
    result = reviewlab(lab_down, "fault", "delay", "catalog-1", "300")
    assert_one_line_error(result, "is not a web server or worker")


def test_a_reader_that_goes_away_is_not_an_error_trace(lab_down: dict[str, str]) -> None:
    """`reviewlab lb show | head -1`: the pipe closes before the CLI is done writing."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reviewlab_lab.cli", "lb", "show"],
        env=lab_down,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) != 0
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


def test_compose_without_a_docker_daemon_says_how_to_start_one(
    lab_down: dict[str, str], tmp_path: Path
) -> None:
    """No `docker` on the PATH at all: the runtime cannot run, and says what to do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**lab_down, "PATH": str(bin_dir), "REVIEWLAB_RUNTIME": "compose"}
    result = reviewlab(env, "up")
    assert_one_line_error(result, "no Docker daemon answers")
    assert "make docker" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("lb", "stats", "--since", "-5"), "--since must be a positive number of seconds, not -5"),
        (("lb", "stats", "--since", "0"), "--since must be a positive number of seconds"),
        (("token", "kim", "--ttl", "-1"), "--ttl must be a positive number of seconds, not -1"),
        (("token", "kim", "--ttl", "0"), "--ttl must be a positive number of seconds"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_a_negative_duration_is_refused_in_one_line(
    lab_down: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    assert_one_line_error(reviewlab(lab_down, *args), says)
