"""A network partition on one machine's loopback: cgroup v2 plus iptables.

Every native node talks from 127.0.0.1, so a rule on a node's own address cannot tell its
traffic from anyone else's. Instead the cut-off node's processes (Patroni and its Postgres,
with every child they fork later) move into one cgroup and the nodes it must lose into
another; iptables drops what either group sends to the other side's addresses. Clients
outside both groups (the web tier, the tests) still reach the cut-off node: the case in
which a primary that lost its leader key must stop acknowledging writes.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reviewlab_lab.errors import LabFailed

# Every rule this module adds carries this comment, so a heal finds them all.
RULE_TAG = "reviewlab-partition"
GROUP_PREFIX = "reviewlab-cut-"


@dataclass(frozen=True)
class Side:
    """One side of the cut: the processes of some nodes, and those nodes' addresses."""

    group: str
    pids: list[int]
    addresses: list[str]


def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified in hybrid)."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise LabFailed("no cgroup v2 hierarchy is mounted: a partition needs one (Linux 4.5+)")


def descendants(pid: int) -> list[int]:
    """PID and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parent = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("iptables") is None:
        raise LabFailed("iptables is not installed: `make setup` installs it")
    done = subprocess.run(["iptables", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LabFailed(f"`iptables {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def _move(pids: list[int], group: Path) -> None:
    for pid in pids:
        try:
            (group / "cgroup.procs").write_text(str(pid))
        except (ProcessLookupError, FileNotFoundError):
            continue  # it exited meanwhile


def connections(pids: list[int], far: list[str]) -> list[tuple[str, str, str, str]]:
    """TCP connections of PIDS to the addresses FAR: (local, port, remote, port)."""
    wanted = {f"pid={pid}," for pid in pids}
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=False
    ).stdout
    found = []
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) < 5 or not any(pid in line for pid in wanted):
            continue
        local, remote = fields[2].rsplit(":", 1), fields[3].rsplit(":", 1)
        if remote[0] in far:
            found.append((local[0], local[1], remote[0], remote[1]))
    return found


def cut(node: str, isolated: Side, others: Side) -> None:
    """Drop every packet between the two sides, both ways, until heal().

    A socket keeps the cgroup it was made in, so the group rules catch new connections;
    connections already open are dropped by their addresses and ports, in both directions.
    Either way they go silent, as over a broken link: no reset tells anyone.
    """
    root = cgroup2_root()
    tag = ["-m", "comment", "--comment", RULE_TAG, "-j", "DROP"]
    for side, far in ((isolated, others), (others, isolated)):
        group = root / f"{GROUP_PREFIX}{node}-{side.group}"
        group.mkdir(exist_ok=True)
        _move(side.pids, group)
        for address in far.addresses:
            _iptables("-I", "OUTPUT", "-m", "cgroup", "--path", group.name, "-d", address, *tag)
        for local, lport, remote, rport in connections(side.pids, far.addresses):
            for src, sport, dst, dport in (
                (local, lport, remote, rport),
                (remote, rport, local, lport),
            ):
                match = ["-p", "tcp", "-s", src, "--sport", sport, "-d", dst, "--dport", dport]
                _iptables("-I", "OUTPUT", *match, *tag)


def heal() -> list[str]:
    """Remove every partition rule and group; return the groups that were undone."""
    for line in _iptables("-S", "OUTPUT").stdout.splitlines():
        if RULE_TAG in line and line.startswith("-A OUTPUT "):
            _iptables("-D", "OUTPUT", *line.split()[2:], check=False)
    root = cgroup2_root()
    undone = []
    for group in sorted(root.glob(f"{GROUP_PREFIX}*")):
        pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        _move(pids, root)
        group.rmdir()
        undone.append(group.name.removeprefix(GROUP_PREFIX))
    return undone


def active() -> bool:
    """Is any partition in place?"""
    try:
        return any(cgroup2_root().glob(f"{GROUP_PREFIX}*"))
    except LabFailed:
        return False
