"""Step acid: a review and its photo job commit together or not at all."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg import sql
from reviewlab_common import db, photos, shards, storage, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Cluster, Topology

from reviewlab_lab import photos as lab_photos
from reviewlab_lab import users
from reviewlab_lab.chaos import cleanup
from reviewlab_lab.demo import LINEN_SHIRT
from reviewlab_lab.tour.replication import SCRATCH_USER
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab, require

BODY = "tour: all or nothing"
# A trigger on the shard's outbox that refuses the job of the tour's review alone (it reads
# the review row the same transaction just wrote), so no shopper's review is touched.
TRIGGER = "tour_refuses_outbox"
CREATE = f"""
CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM reviews WHERE id = NEW.review_id AND body LIKE {{pattern}}) THEN
    RAISE EXCEPTION 'the guided tour refuses this photo job (outbox insert failed)';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER {TRIGGER} BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION {TRIGGER}();
"""
DROP = f"DROP TRIGGER IF EXISTS {TRIGGER} ON outbox; DROP FUNCTION IF EXISTS {TRIGGER}();"


@dataclass
class AcidEvidence(Evidence):
    shard: str = ""
    status: int = 0
    error_code: str = ""
    reviews_left: int = -1  # rows with the tour's body on the shard after the failed post
    jobs_left: int = -1  # outbox rows for the photo
    photo_stored: bool = False  # the original in MinIO: stored before the transaction


def superuser(topology: Topology, cluster: Cluster) -> psycopg.Connection[Any]:
    """A superuser connection to CLUSTER's primary (a trigger is the table owner's to make)."""
    info = db.cluster_conninfo(
        cluster,
        user="postgres",
        password=lab_secrets.load(topology).postgres_password,
        app="reviewlab-tour",
        session="read-write",
    )
    return psycopg.connect(info, autocommit=True)


def run(lab: TourLab) -> AcidEvidence:
    topology = lab.topology
    vip = topology.nodes[topology.services["www"]].host_url
    shard = shards.ShardMap(topology).shard_for_product(LINEN_SHIRT)
    cluster = topology.clusters[shard]
    uid = users.user_id(topology, SCRATCH_USER)
    body = f"{BODY} {uuid.uuid4().hex[:10]}"
    photo = lab_photos.portrait(body)
    key = photos.original_key(hashlib.sha256(photo).hexdigest(), "jpg")
    s3 = storage.client(topology)
    seen = AcidEvidence(shard=shard)

    def drop() -> None:
        with superuser(topology, cluster) as conn:
            conn.execute(DROP)

    lab.undo_later(f"the tour's trigger off {shard}'s outbox", drop)
    lab.undo_later(
        "the tour's review and photo out of the shop",
        lambda: cleanup.remove_run(topology, body_prefix=body, key_prefix=body, user_id=uid),
    )
    lab.undo_later(
        "the tour's photo out of MinIO",
        lambda: s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key),
    )
    with superuser(topology, cluster) as conn:
        conn.execute(DROP)
        conn.execute(sql.SQL(CREATE).format(pattern=sql.Literal(cleanup.like_prefix(body))))
    bearer = tokens.issue(lab_secrets.load(topology).token_secret, uid, ttl_s=600)
    posted = httpx.post(
        f"{vip}/api/reviews",
        headers={"Authorization": f"Bearer {bearer}"},
        data={"product_id": str(LINEN_SHIRT), "rating": "5", "body": body},
        files={"photo": ("photo.jpg", photo, "image/jpeg")},
        timeout=15,
    )
    seen.status = posted.status_code
    try:
        seen.error_code = str(posted.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        seen.error_code = posted.text[:80]
    drop()

    def count(conn: psycopg.Connection[Any]) -> tuple[int, int]:
        pattern = cleanup.like_prefix(body)
        reviews = conn.execute("SELECT count(*) FROM reviews WHERE body LIKE %s", (pattern,))
        jobs = conn.execute(
            "SELECT count(*) FROM outbox WHERE payload->>'original_key' = %s", (key,)
        )
        found_reviews, found_jobs = reviews.fetchone(), jobs.fetchone()
        return int(found_reviews[0] if found_reviews else -1), int(
            found_jobs[0] if found_jobs else -1
        )

    seen.reviews_left, seen.jobs_left = cleanup.on_primary(topology, cluster, count)
    seen.photo_stored = storage.exists(s3, key)
    seen.shown += [
        f"a trigger on {shard}'s outbox refuses the tour's photo job, then:",
        f"POST {vip}/api/reviews (a review with a photo) -> {seen.status} {seen.error_code}",
        f"on {shard}'s primary: {seen.reviews_left} review rows, {seen.jobs_left} outbox rows",
        f"in MinIO: {key} {'is stored' if seen.photo_stored else 'is not there'}",
    ]
    where = f"{shard}'s primary, after the failed POST"
    seen.add("review rows with the tour's body", seen.reviews_left, "rows", where)
    seen.add("photo jobs in the outbox", seen.jobs_left, "rows", where)
    seen.add("answer to the POST", seen.status, "HTTP", "via the vIP")
    return seen


def check(seen: AcidEvidence) -> str:
    if seen.reviews_left < 0:
        raise ClaimFailed("the shard was not read after the POST")
    require(
        seen.status >= 500,
        f"the POST should fail when its outbox insert fails; it answered {seen.status}",
    )
    require(
        seen.reviews_left == 0 and seen.jobs_left == 0,
        f"a failed transaction must leave nothing: {seen.reviews_left} review rows and "
        f"{seen.jobs_left} outbox rows are there",
    )
    return (
        f"the outbox insert failed, the POST answered {seen.status}, and {seen.shard} holds "
        "neither the review nor its job: the transaction rolled back as one"
        + ("; the photo, stored before it, stayed in MinIO" if seen.photo_stored else "")
    )


STEP = Step(
    name="acid",
    title="ACID: all or nothing",
    concept=(
        "A database transaction is atomic: every statement in it commits, or none does. "
        "The shop writes a review and its photo job (an outbox row) in one transaction, so "
        "a worker never misses a photo and never cuts out a photo with no review. You will "
        "make the outbox insert fail for one review and look for what is left."
    ),
    claim=(
        "When the outbox insert fails, the POST fails and the shard holds neither the review "
        "row nor its job: the review's insert, already made, rolled back with it."
    ),
    saw=(
        "Atomicity: the review insert had succeeded, but it went with the failed job. "
        "The photo was stored in MinIO before the transaction, and no rollback reaches "
        "MinIO: that is why photos are content-addressed (a retry lands on the same key) and "
        "a review never points at a photo that is not stored."
    ),
    run=run,
    check=check,
)
