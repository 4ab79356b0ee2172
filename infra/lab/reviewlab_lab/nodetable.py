"""README.md's node table, generated from the topology: `reviewlab docs generate`.

One row per cluster, or per kind for nodes outside a cluster, in the topology's order: the
nodes' names (a numbered series as `web-1..3`), what they are (the kind's `what` in
reviewlab_lab.kinds, and what the topology says of these nodes) and their native addresses
and ports. The table sits between two markers in README.md; a unit test fails when it is stale.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import WATCHING_KINDS, Node, Topology, TopologyError

from reviewlab_lab import kinds
from reviewlab_lab.paths import REPO, TOPOLOGY_PATH

README = REPO / "README.md"
COMMAND = "reviewlab docs generate"
BEGIN = f"<!-- node table: generated from infra/topology.toml by `{COMMAND}` -->"
END = "<!-- end of the node table -->"
HEADER = "| node | what | address |\n|---|---|---|\n"
# The ports beside a node's own, by the name the table gives them.
OTHER_PORTS = (
    ("rest_port", "REST"),
    ("peer_port", "peers"),
    ("console_port", "console"),
    ("ceiling_port", "ceiling"),
    ("stats_port", "stats"),
)
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def rows(topology: Topology) -> list[list[Node]]:
    """The nodes in rows: a cluster's members, else every node of one kind."""
    found: dict[tuple[str, str], list[Node]] = {}
    for node in topology.nodes.values():
        found.setdefault((node.kind, node.cluster or ""), []).append(node)
    return list(found.values())


def names(nodes: Sequence[Node]) -> str:
    """`web-1..3` for a numbered series, `reviews-0a/0b` for siblings, else every name."""
    if len(nodes) == 1:
        return nodes[0].name
    numbered = [_NUMBERED.match(n.name) for n in nodes]
    if all(numbered):
        stems = {m.group(1) for m in numbered if m}
        numbers = [int(m.group(2)) for m in numbered if m]
        if len(stems) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{stems.pop()}{numbers[0]}..{numbers[-1]}"
    first = nodes[0].name
    # The longest prefix up to a dash that every name shares: `reviews-` of reviews-0a, -0b.
    shared = [first[: at + 1] for at, c in enumerate(first) if c == "-"]
    stem = next((s for s in reversed(shared) if all(n.name.startswith(s) for n in nodes)), "")
    if stem:
        return stem + "/".join(n.name[len(stem) :] for n in nodes)
    return ", ".join(n.name for n in nodes)


def _hosts(addresses: Sequence[str]) -> str:
    """`127.0.0.11-13` for consecutive addresses, else each (`127.0.0.111, .112`)."""
    numbers = [int(ipaddress.IPv4Address(a)) for a in addresses]
    first, *rest = addresses
    if rest and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        last = addresses[-1]
        if first.rsplit(".", 1)[0] == last.rsplit(".", 1)[0]:
            return f"{first}-{last.rsplit('.', 1)[1]}"
    network = first.rsplit(".", 1)[0] + "."
    short = [a[len(network) - 1 :] if a.startswith(network) else a for a in rest]
    return ", ".join([first, *short])


def addresses(nodes: Sequence[Node]) -> str:
    """Where the machine reaches the nodes (their native addresses), and their other ports."""
    ports = {n.port for n in nodes}
    if len(ports) == 1:
        text = f"{_hosts([n.host_address for n in nodes])}:{ports.pop()}"
    else:
        text = ", ".join(f"{n.host_address}:{n.port}" for n in nodes)
    for field, label in OTHER_PORTS:
        values = sorted({v for n in nodes if (v := getattr(n, field)) is not None})
        if values:
            text += f", {label} :{'/'.join(map(str, values))}"
    return text


def _what_of_kind(kind: str) -> str:
    what = kinds.spec(kind).what
    if not what:
        raise TopologyError(
            f"kind {kind!r} has no `what` in reviewlab_lab.kinds: add one line saying what a "
            f"node of it is, then run `{COMMAND}`"
        )
    return what


def what(topology: Topology, nodes: Sequence[Node]) -> str:
    """The kind's one line, and what the topology says of these nodes."""
    text = _what_of_kind(nodes[0].kind)
    cluster = topology.clusters.get(nodes[0].cluster or "")
    if cluster is not None:
        role = "the catalog" if cluster.purpose == "catalog" else "a review shard"
        text += f": {role}, scope `{cluster.name}`"
        if cluster.synchronous_mode:
            text += ", `synchronous_mode`"
        if cluster.starts_empty:
            text += "; no buckets at first (`reviewlab shard move` fills it)"
    if nodes[0].kind in WATCHING_KINDS:
        text += "; watches " + ", ".join(n.watches or "?" for n in nodes)
    uploads = [n.name for n in nodes if "upload" in n.roles]
    if nodes[0].kind == "web" and len(uploads) < len(nodes):
        text += f"; uploads go to {', '.join(uploads) or 'none'}"
    # A row of several nodes leaves out a name that points at one of them (cdn, the default
    # edge: GeoDNS gives other clients another).
    if len(nodes) == 1:
        named = [s for s, target in topology.services.items() if target == nodes[0].name]
        text += "".join(f"; named `{topology.fqdn(s)}`" for s in named)
    return text.replace("|", "\\|")


def table(topology: Topology | None = None) -> str:
    """The table's Markdown, from the topology as the native runtime runs it."""
    topology = topology or lab_topology.load(TOPOLOGY_PATH, runtime="native")
    body = "".join(
        f"| {names(row)} | {what(topology, row)} | {addresses(row)} |\n" for row in rows(topology)
    )
    return HEADER + body


def with_table(readme: str, new_table: str) -> str:
    """README's text with NEW_TABLE between the markers (whatever stood there before)."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise TopologyError(
            f"README.md has no node table to replace: put the lines {BEGIN} and {END} where it "
            f"goes, then run `{COMMAND}`"
        )
    return f"{readme[: start + len(BEGIN)]}\n{new_table}{readme[end:]}"


def stale_reason(path: Path = README) -> str | None:
    """Why the committed table does not match the topology, or None."""
    text = path.read_text()
    if with_table(text, table()) == text:
        return None
    return f"{path.name}'s node table is stale: run `{COMMAND}`"


def generate(path: Path = README) -> bool:
    """Rewrite the table in PATH; True when it changed."""
    text = path.read_text()
    new = with_table(text, table())
    if new == text:
        return False
    path.write_text(new)
    return True


def run(args: argparse.Namespace) -> None:
    if args.check:
        stale = stale_reason()
        if stale:
            raise TopologyError(stale)
        print(f"{README.name}'s node table matches the topology")
        return
    changed = generate()
    print(f"{README}: node table {'written' if changed else 'unchanged'}")
