"""Step l4-vs-l7: a layer-4 balancer forwards connections, a layer-7 one reads each request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
from reviewlab_common import cdn, photos, storage

from reviewlab_lab.loadbalancer import LAYERS, LbMode
from reviewlab_lab.tour.cdnsteps import new_object
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

# Requests sent one after another over one kept-alive connection.
REQUESTS = 9
HEALTH = "/healthz"


@dataclass(frozen=True)
class LayerSeen:
    layer: str
    # Who answered each of the requests over one connection (X-Served-By), in order.
    served: list[str]
    media_status: int
    media_served_by: str
    media_cache: str  # X-Cache-Status: set only when a CDN edge answered


@dataclass
class LayersEvidence(Evidence):
    found: LbMode = field(default_factory=LbMode)
    left: LbMode | None = None
    seen: dict[str, LayerSeen] = field(default_factory=dict)
    webs: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)


def look(vip: str, layer: str, media: str) -> LayerSeen:
    with httpx.Client(base_url=vip, timeout=10) as one_connection:
        served = [
            one_connection.get(HEALTH).headers.get("X-Served-By", "?") for _ in range(REQUESTS)
        ]
        reply = one_connection.get(media)
    return LayerSeen(
        layer=layer,
        served=served,
        media_status=reply.status_code,
        media_served_by=reply.headers.get("X-Served-By", "?"),
        media_cache=reply.headers.get("X-Cache-Status", ""),
    )


def run(lab: TourLab) -> LayersEvidence:
    topology, runtime = lab.topology, lab.runtime
    # An image both edges already hold (pushed, content-addressed): the answer shows where the
    # vIP routes it, not how long a fetch from the origin takes.
    s3 = storage.client(topology)
    media = new_object(lab, s3, f"{photos.CUTOUTS}tour-{uuid.uuid4().hex[:10]}.jpg", immutable=True)
    cdn.push(topology, [media])
    found = runtime.lb_mode()
    lab.undo_later(f"the vIP back to {found}", lambda: runtime.apply_lb_mode(found))
    vip = topology.nodes[topology.services["www"]]
    seen = LayersEvidence(
        found=found,
        webs=[w.name for w in topology.of_kind("web")],
        edges=[e.name for e in cdn.edges(topology)],
    )
    for layer in LAYERS:
        mode = LbMode(layer, "round_robin")
        runtime.apply_lb_mode(mode)
        lab.say(f"vIP switched to {mode}")
        seen.seen[layer] = look(vip.host_url, layer, media)
    runtime.apply_lb_mode(found)
    seen.left = runtime.lb_mode()
    seen.shown.append(f"{REQUESTS} GET {HEALTH} over one kept-alive connection, then GET {media}:")
    for layer, what in seen.seen.items():
        answer = f"{what.media_status} from {what.media_served_by}"
        if what.media_cache:
            answer += f" ({what.media_cache})"
        seen.shown += [
            f"  {layer}: {HEALTH} answered by {' '.join(what.served)}",
            f"  {layer}: {media} -> {answer}",
        ]
        where = f"the vIP {vip.host_address}:{vip.port} in {layer}, one connection"
        seen.add(f"{layer}: web servers on one connection", len(set(what.served)), "", where)
    seen.shown.append(f"the vIP is back in {seen.left}, the mode it was found in")
    return seen


def check(seen: LayersEvidence) -> str:
    require(set(seen.seen) == set(LAYERS), f"only {sorted(seen.seen)} ran")
    l4, l7 = seen.seen["l4"], seen.seen["l7"]
    require(
        len(set(l4.served)) == 1 and l4.served[0] in seen.webs,
        f"at layer 4 one connection should reach one web server; it reached {l4.served}",
    )
    require(
        set(l7.served) == set(seen.webs),
        f"at layer 7 the requests of one connection should reach every web server; "
        f"they reached {sorted(set(l7.served))}",
    )
    require(
        l7.media_status == 200 and l7.media_served_by in seen.edges and bool(l7.media_cache),
        f"at layer 7 /media/ should go to a CDN edge; it got {l7.media_status} from "
        f"{l7.media_served_by}",
    )
    require(
        l4.media_status == 404 and l4.media_served_by in seen.webs,
        f"at layer 4 /media/ cannot be routed, so a web server should answer 404; it got "
        f"{l4.media_status} from {l4.media_served_by}",
    )
    require(seen.left == seen.found, f"the vIP was left in {seen.left}, not {seen.found}")
    return (
        f"l4: one connection, one server ({l4.served[0]}), /media/ a 404 from "
        f"{l4.media_served_by}; l7: the same connection's requests spread over "
        f"{len(set(l7.served))} servers, /media/ served by {l7.media_served_by}"
    )


STEP = Step(
    name="l4-vs-l7",
    title="Layer 4 vs layer 7",
    concept=(
        "A layer-4 load balancer forwards TCP connections without reading them; a layer-7 "
        "one reads each HTTP request and can route it by its path. You will send the same "
        f"{REQUESTS} requests over one kept-alive connection, and one image request, "
        "through the vIP in each layer."
    ),
    claim=(
        "At layer 4 all requests of one connection reach one web server and /media/ is a "
        "web server's 404; at layer 7 they spread over every web server and /media/ goes to "
        "a CDN edge; the vIP is left in the mode it was found in."
    ),
    saw=(
        "Layer 4 is cheaper (nothing is parsed) but balances connections, not requests, and "
        "cannot route: every path lands on a web server. Layer 7 pays for parsing and gains "
        "routing by path (images to the CDN, uploads to the upload pool), its JSON errors, "
        "a micro-cache and tracing headers."
    ),
    run=run,
    check=check,
)
