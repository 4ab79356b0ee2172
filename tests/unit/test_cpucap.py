"""CPU budgets on this machine's own cgroups (root): a process held to a share of a core, then
given back to the cgroup it came from, with nothing of the lab's left behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from reviewlab_lab import cpucap
from reviewlab_lab.errors import LabFailed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups are root's")
NODE = "test-cpucap"


@pytest.fixture()
def sleeper() -> Iterator[int]:
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    cpucap.lift(NODE, [process.pid])
    process.kill()
    process.wait()


def test_a_capped_process_gets_its_quota_and_goes_back_where_it_was(sleeper: int) -> None:
    before = str(cpucap.cgroup_of(sleeper))
    cpucap.limit(NODE, [sleeper], 0.25)
    group = next(Path(cpucap.CGROUPS).glob(f"**/{cpucap.GROUP}/{NODE}"))
    assert f"/{cpucap.GROUP}/{NODE}" in str(cpucap.cgroup_of(sleeper))
    quota = group / "cpu.cfs_quota_us"
    budget = quota if quota.exists() else group / "cpu.max"  # cgroup v1, else v2
    assert budget.read_text().split()[0] == str(cpucap.PERIOD_US // 4)
    cpucap.limit(NODE, [sleeper], 0.5)  # a new budget in place, not a group inside a group
    assert f"/{cpucap.GROUP}/{NODE}" in str(cpucap.cgroup_of(sleeper))
    cpucap.lift(NODE, [sleeper])
    assert str(cpucap.cgroup_of(sleeper)) == before
    assert not list(Path(cpucap.CGROUPS).glob(f"**/{cpucap.GROUP}"))


def test_a_budget_is_bounded_and_needs_a_process() -> None:
    with pytest.raises(ValueError, match=r"0\.01\.\.64 cores"):
        cpucap.limit(NODE, [os.getpid()], 0)
    with pytest.raises(LabFailed, match="no running process to cap"):
        cpucap.limit(NODE, [], 0.5)
