"""A CPU budget for a native node's processes: the kernel's CPU controller (cgroups).

A capped node gets CORES of CPU time per period however idle the machine is, as if it ran
on a small machine of its own. Its group sits below the cgroup its processes were in, so
lifting the cap moves them back there. Both cgroup v1 (a `cpu` hierarchy) and v2 work.
"""

from __future__ import annotations

from pathlib import Path

from reviewlab_lab.errors import LabFailed

CGROUPS = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
GROUP = "reviewlab-cpu-cap"


def _v1() -> bool:
    return (CGROUPS / "cpu" / "tasks").exists()


def cgroup_of(pid: int) -> Path:
    """The cgroup directory PID's CPU controller puts it in now."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if _v1() and "cpu" in controllers.split(","):
            return CGROUPS / "cpu" / path.lstrip("/")
        if not _v1() and controllers == "":
            return CGROUPS / path.lstrip("/")
    raise LabFailed(f"process {pid} is in no CPU cgroup (see /proc/{pid}/cgroup)")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise LabFailed(f"cannot write {text!r} to {path}: {exc.strerror} (run as root)") from exc


def limit(node: str, pids: list[int], cores: float) -> None:
    """Hold NODE's processes PIDS to CORES of CPU time (0.25: a quarter of one core)."""
    if not pids:
        raise LabFailed(f"{node} has no running process to cap")
    if not 0.01 <= cores <= 64:
        raise ValueError(f"a CPU budget is 0.01..64 cores, not {cores}")
    origin = cgroup_of(pids[0])
    if origin.parent.name == GROUP:  # capped already: change the budget in place
        group, origin = origin, origin.parent.parent
    else:
        group = origin / GROUP / node
    group.mkdir(parents=True, exist_ok=True)
    quota = round(cores * PERIOD_US)
    if _v1():
        _write(group / "cpu.cfs_period_us", str(PERIOD_US))
        _write(group / "cpu.cfs_quota_us", str(quota))
    else:
        for parent in (origin, origin / GROUP):
            _write(parent / "cgroup.subtree_control", "+cpu")
        _write(group / "cpu.max", f"{quota} {PERIOD_US}")
    for pid in pids:
        _write(group / "cgroup.procs", str(pid))


def lift(node: str, pids: list[int]) -> None:
    """Give NODE's processes back to the cgroup they came from; no cap is no change."""
    for pid in pids:
        try:
            group = cgroup_of(pid)
        except FileNotFoundError:  # the process ended: nothing of it to move
            continue
        if group.parent.name == GROUP and group.name == node:
            _write(group.parent.parent / "cgroup.procs", str(pid))
    for group in CGROUPS.glob(f"**/{GROUP}/{node}"):
        if not (group / "cgroup.procs").read_text().split():
            group.rmdir()
        if not any(child.is_dir() for child in group.parent.iterdir()):
            group.parent.rmdir()  # the last capped node of the lab: its folder goes too
