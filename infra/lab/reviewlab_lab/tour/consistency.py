"""Step consistency: a lagging replica serves a stale read; the consistency token, a fresh one."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import httpx
from reviewlab_common import consistency, shards, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.db import database_of
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import dnsrecords, users
from reviewlab_lab.chaos import cleanup
from reviewlab_lab.chaos.load import PRODUCTS
from reviewlab_lab.tour.replication import SCRATCH_USER, connect
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab, require

# Patroni resumes a paused replay on its next loop, so a window counts only if, at its end,
# no replica had replayed the write yet; a few short windows are tried.
WINDOWS = 5
CAUGHT_UP_S = 15.0
BODY = "tour: read your writes"


@dataclass(frozen=True)
class Read:
    with_token: bool
    read_from: str  # X-Read-From: cluster/role
    node: str  # X-Read-Node
    has_review: bool
    ms: float


@dataclass
class ConsistencyEvidence(Evidence):
    shard: str = ""
    replicas: list[str] = field(default_factory=list)
    review_id: str = ""
    stale: Read | None = None
    fresh: Read | None = None
    behind_bytes: int | None = None  # the write's LSN minus the replica's replayed LSN
    caught_up_ms: float | None = None  # after replay resumed, until a plain read saw it
    windows: int = 0


def shard_with_replica(topology: Topology) -> tuple[int, str, list[Node]]:
    """A seeded product whose shard has a replica: the product, its shard, the replicas."""
    shard_map = shards.ShardMap(topology)
    for product in PRODUCTS:
        shard = shard_map.shard_for_product(product)
        roles = dnsrecords.cluster_roles(topology.clusters[shard])
        replicas = [topology.nodes[n] for n, role in roles.items() if role != "leader"]
        if replicas and "leader" in roles.values():
            return product, shard, replicas
    raise ClaimFailed("no shard that holds products has a primary and a replica now")


def set_replay(topology: Topology, replicas: list[Node], paused: bool) -> None:
    """Pause (or resume) WAL replay: a paused replica keeps receiving WAL but shows none of it."""
    call = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
    for node in replicas:
        dbname = database_of(topology.clusters[node.cluster or ""])
        with connect(topology, node, superuser=True, dbname=dbname) as conn:
            conn.execute(f"SELECT {call}()")


def bytes_behind(topology: Topology, replicas: list[Node], lsn: str) -> int | None:
    """How far the least-behind replica is from LSN, in bytes of WAL (None: one reached it)."""
    behind = []
    for node in replicas:
        dbname = database_of(topology.clusters[node.cluster or ""])
        with connect(topology, node, superuser=True, dbname=dbname) as conn:
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", (lsn,)
            ).fetchone()
        behind.append(int(row[0]) if row and row[0] is not None else 0)
    least = min(behind, default=0)
    return least if least > 0 else None


def read(url: str, review_id: str, bearer: str, token: str | None) -> Read:
    # A bearer token steps around the vIP's one-second micro-cache without changing where the
    # read goes: only the consistency token does that.
    headers = {"Authorization": f"Bearer {bearer}"}
    if token:
        headers[consistency.HEADER] = token
    reply = httpx.get(url, headers=headers, timeout=10)
    if reply.status_code != 200:
        raise ClaimFailed(f"GET {url} answered {reply.status_code}: {reply.text[:200]}")
    ids = {str(item["id"]) for item in reply.json()["items"]}
    return Read(
        with_token=token is not None,
        read_from=reply.headers.get("X-Read-From", "?"),
        node=reply.headers.get("X-Read-Node", "?"),
        has_review=review_id in ids,
        ms=reply.elapsed.total_seconds() * 1000,
    )


def run(lab: TourLab) -> ConsistencyEvidence:
    topology = lab.topology
    vip = topology.nodes[topology.services["www"]].host_url
    product, shard, replicas = shard_with_replica(topology)
    uid = users.user_id(topology, SCRATCH_USER)
    bearer = tokens.issue(lab_secrets.load(topology).token_secret, uid, ttl_s=600)
    prefix = f"{BODY} {uuid.uuid4().hex[:10]}"
    lab.undo_later(
        "the tour's reviews out of the shop",
        lambda: cleanup.remove_run(topology, body_prefix=prefix, key_prefix=prefix, user_id=uid),
    )
    names = ", ".join(r.name for r in replicas)
    lab.undo_later(f"WAL replay resumed on {names}", lambda: set_replay(topology, replicas, False))
    seen = ConsistencyEvidence(shard=shard, replicas=[r.name for r in replicas])
    listing = f"{vip}/api/products/{product}/reviews?limit=5"
    for window in range(1, WINDOWS + 1):
        seen.windows = window
        set_replay(topology, replicas, True)
        try:
            posted = httpx.post(
                f"{vip}/api/reviews",
                headers={"Authorization": f"Bearer {bearer}"},
                data={"product_id": str(product), "rating": "4", "body": f"{prefix} #{window}"},
                timeout=10,
            )
            if posted.status_code != 201:
                raise ClaimFailed(f"the review was not written: {posted.status_code} {posted.text}")
            seen.review_id = str(posted.json()["id"])
            token = posted.headers[consistency.HEADER]
            seen.stale = read(listing, seen.review_id, bearer, None)
            seen.fresh = read(listing, seen.review_id, bearer, token)
            lsn = consistency_lsn(token, shard)
            seen.behind_bytes = bytes_behind(topology, replicas, lsn)
        finally:
            set_replay(topology, replicas, False)
        resumed = time.perf_counter()
        if seen.behind_bytes is not None and seen.stale.read_from.endswith("/replica"):
            break
        if seen.behind_bytes is None:
            why = "a replica replayed the write before the window ended (Patroni resumes replay)"
        else:
            why = f"the read without the token went to {seen.stale.node} ({seen.stale.read_from})"
        lab.say(f"window {window}: {why}; again")
    if seen.stale is None or seen.fresh is None:
        raise ClaimFailed("no read was made")
    limit = resumed + CAUGHT_UP_S
    while time.perf_counter() < limit:
        if read(listing, seen.review_id, bearer, None).has_review:
            seen.caught_up_ms = (time.perf_counter() - resumed) * 1000
            break
        time.sleep(0.05)
    seen.shown.append(f"a review written on {shard}'s primary while {names} did not replay;")
    seen.shown.append(f"then the same read, GET {listing}, twice:")
    for label, done in (("without the token", seen.stale), ("with the token", seen.fresh)):
        verdict = "has the new review" if done.has_review else "does NOT have it (stale)"
        seen.shown.append(f"  {label:<18} served by {done.node} ({done.read_from}): {verdict}")
        seen.add(f"read {label}", done.ms, "ms", f"via the vIP, served by {done.node}")
    if seen.behind_bytes is not None:
        seen.add("replica behind the write", seen.behind_bytes, "bytes of WAL", names)
    if seen.caught_up_ms is not None:
        seen.add("replay resumed, plain read fresh", seen.caught_up_ms, "ms", "via the vIP")
    return seen


def consistency_lsn(token: str, shard: str) -> str:
    """The LSN TOKEN holds for SHARD ('reviews-1=0/3000060,...')."""
    for part in token.split(","):
        name, _, lsn = part.strip().partition("=")
        if name == shard and lsn:
            return lsn
    raise ClaimFailed(f"the write's consistency token {token!r} names no position on {shard}")


def check(seen: ConsistencyEvidence) -> str:
    stale, fresh = seen.stale, seen.fresh
    if stale is None or fresh is None:
        raise ClaimFailed("no read was made")
    require(
        seen.behind_bytes is not None,
        f"in each of {seen.windows} windows a replica had replayed the write before it ended",
    )
    require(
        stale.read_from == f"{seen.shard}/replica" and stale.node in seen.replicas,
        f"the read without the token should go to a replica of {seen.shard}; it went to "
        f"{stale.node} ({stale.read_from})",
    )
    require(not stale.has_review, "the replica's read already had the new review: not stale")
    require(
        fresh.read_from == f"{seen.shard}/primary" and fresh.has_review,
        f"the read with the token should come from {seen.shard}'s primary with the review; "
        f"it came from {fresh.node} ({fresh.read_from}), review there: {fresh.has_review}",
    )
    require(
        seen.caught_up_ms is not None,
        f"the replica did not catch up within {CAUGHT_UP_S:.0f} s of replay resuming",
    )
    return (
        f"without the token {stale.node} answered without the new review "
        f"({seen.behind_bytes} bytes behind); with it {fresh.node} answered with it; "
        f"{seen.caught_up_ms:.0f} ms after replay resumed a plain read had it too"
    )


STEP = Step(
    name="consistency",
    title="Availability vs consistency: a stale read and a fresh one",
    concept=(
        "Reads go to replicas so the primary is free for writes, but a replica that lags "
        "answers from the past. The shop hands every writer a consistency token (the log "
        "position of its write); a read carrying it goes to a replica that has replayed that "
        "far, or to the primary. You will stop a replica's replay, write, and read twice."
    ),
    claim=(
        "With replay paused, the read without the token is served by the replica and lacks "
        "the new review (stale); the same read with the token is served by the primary and "
        "has it; once replay resumes, the plain read has it too."
    ),
    saw=(
        "Eventual consistency: the replica kept answering (available) but from the past. "
        "The token buys read-your-writes for the writer alone, at the price of a read on the "
        "primary while replicas lag. The shop page uses it: Kim sees her review at once."
    ),
    run=run,
    check=check,
)
