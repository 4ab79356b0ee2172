"""Step cdn: a pulled object is a MISS then a HIT, its copy expires after the edge's TTL, and a
pushed object is a HIT at its very first request."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from reviewlab_common import cdn, photos, storage
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Node, Topology

from reviewlab_lab.errors import LabFailed
from reviewlab_lab.render import EDGE_MUTABLE_TTL_S
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab, require

OBJECT_BYTES = 16 * 1024
# nginx stores a copy's expiry in whole seconds and expires it once the clock's second is past
# it: a copy lives its TTL and up to one second more.
EXPIRY_GRAIN_S = 1.5
# The first request after the TTL: the expired copy, while the edge fetches a fresh one from
# the shield in the background (proxy_cache_use_stale updating, proxy_cache_background_update).
EXPIRED = "edge STALE"
# After the TTL, the refreshed copy is back at the edge within this long.
REFRESH_S = 3.0


@dataclass(frozen=True)
class Fetch:
    edge: str
    path: str
    status: str  # X-Cache-Status: the tier that answered, then its cache status
    ms: float
    at: float  # time.monotonic() when it was sent


@dataclass
class CdnEvidence(Evidence):
    ttl_s: int = EDGE_MUTABLE_TTL_S
    pulled: list[Fetch] = field(default_factory=list)  # edge, edge, other edge
    expired: Fetch | None = None
    refreshed: Fetch | None = None
    pushed: dict[str, str] = field(default_factory=dict)  # what each edge said to the push
    pushed_first: list[Fetch] = field(default_factory=list)  # the first request at each edge


def fetch(edge: Node, path: str) -> Fetch:
    at = time.monotonic()
    reply = httpx.get(f"{edge.host_url}{path}", timeout=10)
    if reply.status_code != 200:
        raise LabFailed(f"{edge.name} answered {reply.status_code} for {path}")
    status = reply.headers.get("X-Cache-Status", "(no X-Cache-Status)")
    return Fetch(edge.name, path, status, reply.elapsed.total_seconds() * 1000, at)


def forget(topology: Topology, s3: Any, key: str) -> None:
    """KEY out of MinIO, then out of the shield and both edges."""
    s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)
    purge = cdn.purge_key(lab_secrets.load(topology).token_secret)
    failed = [p for p in cdn.purge(topology, [key], purge) if not p.ok]
    if failed:
        raise LabFailed("; ".join(f"{p.node}: {p.outcome}" for p in failed))


def new_object(lab: TourLab, s3: Any, key: str, *, immutable: bool) -> str:
    """A new object in the bucket that no cache holds yet; removed after the step."""
    lab.undo_later(f"{key} out of MinIO and every CDN tier", lambda: forget(lab.topology, s3, key))
    storage.put_object(
        s3, key, os.urandom(OBJECT_BYTES), content_type="image/jpeg", immutable=immutable
    )
    return cdn.media_path(key)


def _figure(seen: CdnEvidence, label: str, done: Fetch) -> None:
    seen.add(label, done.ms, "ms", f"{done.edge} said {done.status}")


def run(lab: TourLab) -> CdnEvidence:
    topology = lab.topology
    s3 = storage.client(topology)
    run_id = uuid.uuid4().hex[:10]
    edge = topology.nodes[topology.services["cdn"]]
    other = next(e for e in cdn.edges(topology) if e.name != edge.name)
    seen = CdnEvidence()

    # Pull: the edge fetches what it lacks on the first request, then keeps it.
    path = new_object(lab, s3, f"{photos.PRODUCTS}tour-{run_id}.jpg", immutable=False)
    seen.shown.append(f"pull: a new object {path}, asked for three times")
    for label, node in (
        ("1st request", edge),
        ("2nd request", edge),
        ("1st at the other edge", other),
    ):
        seen.pulled.append(fetch(node, path))
        _figure(seen, label, seen.pulled[-1])

    # TTL: the edge keeps a mutable key for EDGE_MUTABLE_TTL_S, then asks the shield again.
    expiry = seen.pulled[0].at + EDGE_MUTABLE_TTL_S + EXPIRY_GRAIN_S
    lab.say(
        f"waiting {expiry - time.monotonic():.0f} s for the edge's {EDGE_MUTABLE_TTL_S} s TTL ..."
    )
    while time.monotonic() < expiry:
        time.sleep(min(0.5, max(0.0, expiry - time.monotonic())))
    seen.expired = fetch(edge, path)
    _figure(seen, f"after the {EDGE_MUTABLE_TTL_S} s TTL", seen.expired)
    limit = time.monotonic() + REFRESH_S
    while True:
        seen.refreshed = fetch(edge, path)
        if seen.refreshed.status == "edge HIT" or time.monotonic() > limit:
            break
        time.sleep(0.1)
    _figure(seen, "next request", seen.refreshed)

    # Push: what a worker does with a new cutout before it marks the photo ready.
    path = new_object(lab, s3, f"{photos.CUTOUTS}tour-{run_id}.jpg", immutable=True)
    seen.shown.append(f"push: a new object {path}, pushed to every edge, then asked for")
    seen.pushed = cdn.push(topology, [path])
    for node in cdn.edges(topology):
        seen.pushed_first.append(fetch(node, path))
        _figure(seen, f"1st shopper request at {node.name}", seen.pushed_first[-1])
    return seen


def check(seen: CdnEvidence) -> str:
    statuses = [f.status for f in seen.pulled]
    require(
        statuses == ["origin MISS", "edge HIT", "shield HIT"],
        f"a new pulled object should be origin MISS, edge HIT, then shield HIT at the other "
        f"edge; it was {statuses}",
    )
    if seen.expired is None or seen.refreshed is None:
        raise ClaimFailed("the TTL part did not run")
    require(
        seen.expired.status == EXPIRED,
        f"after {seen.ttl_s} s the edge should answer once from its expired copy while it "
        f"refreshes it ({EXPIRED}); it said {seen.expired.status!r}",
    )
    require(
        seen.refreshed.status == "edge HIT",
        f"the refreshed copy should be an edge HIT again; it was {seen.refreshed.status!r}",
    )
    pushed_ok = all(not s.startswith(("HTTP", "no answer")) for s in seen.pushed.values())
    require(pushed_ok, f"the push failed: {seen.pushed}")
    firsts = [f.status for f in seen.pushed_first]
    require(
        bool(firsts) and all(s == "edge HIT" for s in firsts),
        f"a pushed object's first request should be an edge HIT at every edge; it was {firsts}",
    )
    miss, hit = seen.pulled[0], seen.pulled[1]
    return (
        f"pulled: origin MISS in {miss.ms:.1f} ms, then edge HIT in {hit.ms:.1f} ms; after "
        f"{seen.ttl_s} s the edge said {seen.expired.status}, then edge HIT again; pushed: "
        f"edge HIT at the first request on {len(firsts)} edges"
    )


STEP = Step(
    name="cdn",
    title="The CDN: pull, TTL and push",
    concept=(
        "A CDN keeps copies of images in caches near the shoppers (edges), so most requests "
        "never reach the origin storage. A pull CDN fetches an object on the first request (a "
        "MISS) and serves its copy until its TTL runs out; a push CDN is sent the object "
        "before anyone asks. You will watch both, on a new object each."
    ),
    claim=(
        "A new object is `origin MISS`, then `edge HIT`, then `shield HIT` at the other edge; "
        "once the edge's TTL for mutable keys has passed, the edge answers once from its "
        "expired copy (`edge STALE`) while it refreshes it, then holds the fresh one (`edge "
        "HIT`); a pushed object is an `edge HIT` at its first request on every edge."
    ),
    saw=(
        "X-Cache-Status names the tier that answered: the edge's own copy, the origin shield "
        "behind both edges, or the origin (MinIO). Pull costs the first shopper a trip to the "
        "origin; push pays that before the object is published, which is why a worker pushes "
        "every new cutout before it marks the photo ready. The TTL bounds how old a copy may "
        "be: past it, the edge served the old copy once (STALE) while it fetched a fresh one "
        "in the background. Content-addressed keys never change, so they keep 30 days "
        "(docs/cdn.md)."
    ),
    run=run,
    check=check,
)
