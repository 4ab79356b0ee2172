"""The topology as an SVG diagram, drawn from the topology file: a box per node, grouped in
tiers and clusters, and arrows along the request path. A node of a kind the diagram does not
know lands in the last tier, so new nodes appear without a change here.

The page fills in each box's state, role and figures by element id (console.js).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from reviewlab_common.topology import Node, Topology

BOX_W, BOX_H, GAP, GROUP_GAP = 136, 70, 12, 30
ROW_STEP, TOP, MARGIN = 120, 40, 40
# The widest a line of boxes may be before the tier wraps onto the next line.
MAX_W = 1400
# (tier title, the kinds in it, left to right); the client is drawn, not a node.
TIERS: list[tuple[str, tuple[str, ...]]] = [
    ("shoppers", ("client",)),
    ("entry: DNS, the vIP, the CDN", ("dns", "vip", "edge", "shield")),
    ("load balancers: one holds the vIP", ("lb",)),
    ("web servers", ("web",)),
    ("databases and the shard map", ("postgres", "etcd")),
    ("photo jobs and media", ("redis", "worker", "minio")),
    ("observability and other nodes", ("metrics", "nginx-exporter", "redis-exporter")),
]
# One line per kind, for a reader who opens the page for the first time.
CAPTIONS = {
    "client": "a shopper's phone or browser, outside the lab",
    "dns": "bind9: names to addresses; primary.<cluster> moves on a failover",
    "vip": "the vIP: one address, held by one load balancer at a time (VRRP)",
    "lb": "nginx + keepalived: spreads requests over the web servers; the active one holds "
    "the vIP, the standby takes it when the active dies",
    "edge": "nginx pull cache in front of MinIO: a HIT never reaches the origin",
    "web": "FastAPI: the review API; req/s, p99 and its share of the vIP's traffic",
    "postgres": "Patroni + Postgres: the primary takes writes; a sync replica has every "
    "commit before it is acknowledged, an async one may lag",
    "etcd": "etcd: Patroni's leader keys and the bucket-to-shard map",
    "redis": "Redis stream: photo jobs waiting, pending (taken, not done), dead letters",
    "worker": "segmentation worker: relays the outbox to Redis and cuts the person out",
    "shield": "nginx origin shield: the edges pull from it, and only it reads MinIO",
    "minio": "MinIO: the private photo bucket (only the CDN may read it)",
    "metrics": "Prometheus: scrapes every node every 2 s; this page reads it",
    "nginx-exporter": "reads nginx's stub_status for Prometheus",
    "redis-exporter": "reads Redis's INFO and the job streams for Prometheus",
    "bind-exporter": "reads bind9's statistics channel for Prometheus",
    "console": "this page",
}


@dataclass
class Box:
    name: str
    kind: str
    x: float
    y: float
    node: Node | None = None

    @property
    def bottom(self) -> tuple[float, float]:
        return self.x + BOX_W / 2, self.y + BOX_H

    @property
    def top(self) -> tuple[float, float]:
        return self.x + BOX_W / 2, self.y


@dataclass
class Group:
    name: str
    x: float
    y: float
    w: float


def _tier_of(kind: str) -> int:
    for index, (_, kinds) in enumerate(TIERS):
        if kind in kinds:
            return index
    return len(TIERS) - 1


def _row_items(topology: Topology, tier: int) -> list[list[Node | None]]:
    """The tier's nodes in groups (a cluster, or all of a kind): None is the client."""
    kinds = TIERS[tier][1]
    nodes = [n for n in topology.nodes.values() if _tier_of(n.kind) == tier]
    order = {kind: i for i, kind in enumerate(kinds)}
    nodes.sort(key=lambda n: (order.get(n.kind, len(order)), n.cluster or "", n.name))
    groups: list[list[Node | None]] = [[None]] if "client" in kinds else []
    for node in nodes:
        key = node.cluster or node.kind
        last = groups[-1][-1] if groups else None
        if last is not None and (last.cluster or last.kind) == key:
            groups[-1].append(node)
        else:
            groups.append([node])
    return groups


def _width(groups: list[list[Node | None]]) -> float:
    boxes = sum(len(g) for g in groups)
    return boxes * BOX_W + (boxes - len(groups)) * GAP + max(0, len(groups) - 1) * GROUP_GAP


def _lines(groups: list[list[Node | None]]) -> list[list[list[Node | None]]]:
    """A tier's groups, wrapped onto as many lines as MAX_W needs (a group is never split)."""
    lines: list[list[list[Node | None]]] = [[]]
    for group in groups:
        if lines[-1] and _width([*lines[-1], group]) > MAX_W:
            lines.append([])
        lines[-1].append(group)
    return lines


def layout(topology: Topology) -> tuple[list[Box], list[Group], list[float], float, float]:
    """Boxes, cluster frames, each tier's top, and the diagram's width and height."""
    tiers = [_lines(_row_items(topology, t)) for t in range(len(TIERS))]
    total = max(_width(line) for lines in tiers for line in lines) + 2 * MARGIN
    boxes: list[Box] = []
    groups: list[Group] = []
    tops: list[float] = []
    y = TOP
    for lines in tiers:
        tops.append(y)
        for line in lines:
            x = (total - _width(line)) / 2
            for members in line:
                start = x
                for node in members:
                    name, kind = (node.name, node.kind) if node else ("client", "client")
                    boxes.append(Box(name, kind, x, y, node))
                    x += BOX_W + GAP
                x -= GAP
                first = members[0]
                if first is not None and (first.cluster or first.kind == "etcd"):
                    groups.append(Group(first.cluster or "etcd", start - 6, y - 20, x - start + 12))
                x += GROUP_GAP
            y += ROW_STEP
    return boxes, groups, tops, total, y


def _arrow(a: tuple[float, float], b: tuple[float, float], label: str = "") -> str:
    line = (
        f'<line class="arrow" x1="{a[0]:.0f}" y1="{a[1]:.0f}" x2="{b[0]:.0f}" y2="{b[1]:.0f}" '
        'marker-end="url(#head)"/>'
    )
    if not label:
        return line
    # Near the head, so labels of arrows leaving one box do not overlap.
    lx, ly = a[0] + (b[0] - a[0]) * 0.62, a[1] + (b[1] - a[1]) * 0.62
    return line + f'<text class="arrow-label" x="{lx + 5:.0f}" y="{ly:.0f}">{escape(label)}</text>'


def _arrows(boxes: list[Box], groups: list[Group]) -> list[str]:
    by_kind: dict[str, list[Box]] = {}
    for box in boxes:
        by_kind.setdefault(box.kind, []).append(box)

    def first(kind: str) -> Box | None:
        found = by_kind.get(kind)
        return found[0] if found else None

    def row_bottom(kind: str) -> tuple[float, float] | None:
        row = by_kind.get(kind)
        if not row:
            return None
        return (min(b.x for b in row) + max(b.x for b in row) + BOX_W) / 2, max(
            b.y for b in row
        ) + BOX_H

    out: list[str] = []
    client = first("client")
    if client:
        labels = {"dns": "1. where is www?", "vip": "2. HTTP to the vIP", "edge": "photos"}
        for kind, label in labels.items():
            for box in by_kind.get(kind, []):
                out.append(_arrow(client.bottom, box.top, label if box is by_kind[kind][0] else ""))
    vip = first("vip")
    if vip is not None:
        out += [_arrow(vip.bottom, lb.top) for lb in by_kind.get("lb", [])]
    for lb in by_kind.get("lb", []):
        out += [_arrow(lb.bottom, web.top) for web in by_kind.get("web", [])]
    webs = row_bottom("web")
    if webs:
        for group in groups:
            out.append(_arrow(webs, (group.x + group.w / 2, group.y)))
        minio = first("minio")
        if minio:
            out.append(_arrow(webs, minio.top, "photo"))
    redis, workers = first("redis"), by_kind.get("worker", [])
    if redis and workers:
        w = workers[0]
        out.append(
            _arrow((w.x, w.y + 22), (redis.x + BOX_W, redis.y + 22), "relay: outbox → stream")
        )
        out.append(_arrow((redis.x + BOX_W, redis.y + 46), (w.x, w.y + 46), "jobs"))
    minio = first("minio")
    if minio and workers:
        last = workers[-1]
        out.append(_arrow((last.x + BOX_W, last.y + BOX_H / 2), (minio.x, minio.y + BOX_H / 2)))
    # The CDN: edges pull from the shield when there is one, and the last tier from MinIO,
    # around the right of the diagram (a MISS).
    shield = first("shield")
    if shield is not None:
        for edge in by_kind.get("edge", []):
            out.append(
                _arrow((edge.x + BOX_W, edge.y + BOX_H / 2), (shield.x, shield.y + BOX_H / 2))
            )
    pullers = [shield] if shield is not None else by_kind.get("edge", [])
    right = max(b.x for b in boxes) + BOX_W + 20
    for puller in pullers if minio is not None else []:
        assert minio is not None
        path = (
            f"M{puller.x + BOX_W:.0f},{puller.y + BOX_H / 2:.0f} H{right:.0f} "
            f"V{minio.y + BOX_H / 2:.0f} H{minio.x + BOX_W:.0f}"
        )
        out.append(f'<path class="arrow" d="{path}" fill="none" marker-end="url(#head)"/>')
        out.append(
            f'<text class="arrow-label" x="{right + 4:.0f}" y="{(puller.y + minio.y) / 2:.0f}">'
            "MISS: pull</text>"
        )
    return out


def _box(box: Box) -> str:
    node = box.node
    caption = escape(CAPTIONS.get(box.kind, f"a {box.kind} node"))
    address = f"{node.address}:{node.port}" if node else "outside the lab"
    name = escape(box.name)
    state = "state-unknown" if node else "state-client"
    x, y = box.x, box.y
    return (
        f'<g class="node kind-{box.kind} {state}" id="node-{name}" data-node="{name}">'
        f"<title>{name}: {caption}</title>"
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
        f'<text class="name" x="{x + 7:.0f}" y="{y + 15:.0f}">{name}</text>'
        f'<text class="role" id="role-{name}" x="{x + 7:.0f}" y="{y + 30:.0f}">'
        f"{escape(box.kind)}</text>"
        f'<text class="state" id="state-{name}" x="{x + BOX_W - 7:.0f}" y="{y + 30:.0f}" '
        f'text-anchor="end">{"" if node else "client"}</text>'
        f'<text class="address" x="{x + 7:.0f}" y="{y + 45:.0f}">{address}</text>'
        f'<text class="figure" id="fig-{name}" x="{x + 7:.0f}" y="{y + 61:.0f}"></text>'
        "</g>"
    )


def svg(topology: Topology) -> str:
    boxes, groups, tops, width, height = layout(topology)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="diagram" viewBox="0 0 {width + 60:.0f} '
        f'{height:.0f}" role="img" aria-label="the lab\'s topology">',
        '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    for (title, _), top in zip(TIERS, tops, strict=True):
        y = top - 24
        parts.append(f'<text class="tier" x="8" y="{y:.0f}">{escape(title)}</text>')
    for group in groups:
        parts.append(
            f'<g class="group" id="group-{escape(group.name)}">'
            f'<rect x="{group.x:.0f}" y="{group.y:.0f}" width="{group.w:.0f}" '
            f'height="{BOX_H + 26}" rx="8"/>'
            f'<text x="{group.x + 6:.0f}" y="{group.y + 13:.0f}">{escape(group.name)}'
            f'<tspan class="figure" id="fig-cluster-{escape(group.name)}"></tspan></text></g>'
        )
    parts += _arrows(boxes, groups)
    parts += [_box(b) for b in boxes]
    parts.append("</svg>")
    return "".join(parts)
