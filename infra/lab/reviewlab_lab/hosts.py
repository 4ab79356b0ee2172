"""`reviewlab hosts`: the lab's public names in /etc/hosts, for the machine's own programs.

The lab's DNS answers on 127.0.0.1:5353, and the system resolver only asks port 53, so a
browser or curl on this machine cannot resolve www.shop.internal by itself. A marked block in
the hosts file stands in for the DNS's public view; nothing outside the block is touched.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import dnsrecords
from reviewlab_lab.errors import LabFailed

HOSTS_FILE = Path("/etc/hosts")
BEGIN = "# BEGIN reviewlab: the lab's public DNS view (managed by `reviewlab hosts`; do not edit)"
END = "# END reviewlab"


class HostsError(LabFailed):
    """The hosts file cannot be read or changed as asked."""


@dataclass(frozen=True)
class HostsState:
    installed: str | None  # the block as the file holds it, or None
    wanted: str

    @property
    def current(self) -> bool:
        return self.installed == self.wanted


def block(topology: Topology) -> str:
    """The marked block: one line per public name, from the DNS's public view."""
    lines = [BEGIN]
    for service, address in sorted(dnsrecords.public_records(topology).items()):
        lines.append(f"{address}\t{topology.fqdn(service)}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def split(text: str) -> tuple[str, str | None, str]:
    """TEXT as (before the block, the block or None, after the block)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN]
    if not starts:
        return text, None, ""
    start = starts[0]
    ends = [i for i in range(start, len(lines)) if lines[i].rstrip("\n") == END]
    if not ends:
        raise HostsError(
            f"the hosts file has the line {BEGIN!r} but no {END!r} after it: "
            "fix the file by hand, then run `reviewlab hosts install` again"
        )
    end = ends[0]
    block_text = "".join(lines[start : end + 1])
    if not block_text.endswith("\n"):
        block_text += "\n"
    return "".join(lines[:start]), block_text, "".join(lines[end + 1 :])


def state(topology: Topology, path: Path = HOSTS_FILE) -> HostsState:
    _, installed, _ = split(_read(path))
    return HostsState(installed=installed, wanted=block(topology))


def install(topology: Topology, path: Path = HOSTS_FILE) -> bool:
    """Write the block (in place if it is there, else at the end); True if the file changed."""
    text = _read(path)
    before, installed, after = split(text)
    wanted = block(topology)
    if installed == wanted:
        return False
    if installed is None and before and not before.endswith("\n"):
        before += "\n"
    _write(path, before + wanted + after)
    return True


def remove(path: Path = HOSTS_FILE) -> bool:
    """Take the block out; True if the file changed."""
    before, installed, after = split(_read(path))
    if installed is None:
        return False
    _write(path, before + after)
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise HostsError(f"cannot read {path}: {exc.strerror}") from exc


def _write(path: Path, text: str) -> None:
    # In place, not by rename: /etc/hosts is often a bind mount (containers), which a rename
    # cannot replace.
    try:
        with path.open("r+" if path.exists() else "w") as hosts:
            hosts.write(text)
            hosts.truncate()
            hosts.flush()
            os.fsync(hosts.fileno())
    except OSError as exc:
        raise HostsError(
            f"cannot write {path}: {exc.strerror}; run as root (`sudo reviewlab hosts ...`)"
        ) from exc


def add_parser(sub: Any) -> None:
    p = sub.add_parser("hosts", help="the lab's public names (www, cdn) in /etc/hosts")
    hosts_sub = p.add_subparsers(dest="hosts_command", required=True)
    for name, text in (
        ("install", "add or update the marked block (idempotent)"),
        ("remove", "take the marked block out"),
        ("show", "print the block and whether it is installed"),
    ):
        q = hosts_sub.add_parser(name, help=text)
        q.add_argument("--file", type=Path, default=HOSTS_FILE, help=argparse.SUPPRESS)


def run(topology: Topology, args: argparse.Namespace) -> None:
    path: Path = args.file
    match args.hosts_command:
        case "install":
            changed = install(topology, path)
            names = ", ".join(topology.fqdn(s) for s in sorted(topology.services))
            verb = "installed" if changed else "already installed"
            print(f"{path}: {names} {verb} (`reviewlab hosts remove` takes them out)")
        case "remove":
            changed = remove(path)
            print(f"{path}: the lab's block {'removed' if changed else 'was not there'}")
        case "show":
            found = state(topology, path)
            print(found.wanted, end="")
            if found.current:
                print(f"installed in {path}")
            elif found.installed is None:
                print(f"not installed in {path}: run `reviewlab hosts install` (as root)")
            else:
                print(f"{path} holds an older block: run `reviewlab hosts install` to update it")
