"""Expand: the bucket fence and its change log, so buckets can move between shards online.

`bucket_fence` holds one row per possible bucket (the review id has 10 bits of bucket), all
open: a shard takes every write until the lab says otherwise, as before this revision.
`bucket_changes` logs the ids of reviews written in a bucket under capture, for the mover
to replay on the target. The trigger costs an open bucket one shared advisory lock and one
primary-key read per row written. See reviewlab_common.fence for the states.
"""

from alembic import op

revision = "0003_bucket_fence"
down_revision = "0002_helpful_votes"
branch_labels = None
depends_on = None

GUARD = r"""
CREATE OR REPLACE FUNCTION bucket_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    review bigint;
    bucket_no integer;
    fence_state text;
    fence_lease timestamptz;
BEGIN
    IF TG_TABLE_NAME = 'reviews' THEN
        review := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        review := CASE WHEN TG_OP = 'DELETE' THEN OLD.review_id ELSE NEW.review_id END;
    END IF;
    bucket_no := (review >> 12) & 1023;
    -- Shared with every other writer; the mover's state change takes it exclusively.
    PERFORM pg_advisory_xact_lock_shared(5301, bucket_no);
    SELECT state, lease_until INTO fence_state, fence_lease
        FROM bucket_fence WHERE bucket = bucket_no;
    IF fence_state = 'closed' AND (fence_lease IS NULL OR fence_lease > clock_timestamp()) THEN
        RAISE EXCEPTION 'bucket % is closed on this shard: it is moving or has moved', bucket_no
            USING ERRCODE = 'RL001';
    END IF;
    IF fence_state IS DISTINCT FROM 'open' THEN
        INSERT INTO bucket_changes (bucket, review_id) VALUES (bucket_no, review);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
"""


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '3s'")
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS bucket_fence (
            bucket      integer PRIMARY KEY CHECK (bucket BETWEEN 0 AND 1023),
            state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'capture', 'closed')),
            lease_until timestamptz
        );
        INSERT INTO bucket_fence (bucket) SELECT generate_series(0, 1023) ON CONFLICT DO NOTHING;
        CREATE TABLE IF NOT EXISTS bucket_changes (
            seq       bigserial PRIMARY KEY,
            bucket    integer NOT NULL,
            review_id bigint NOT NULL
        );
        CREATE INDEX IF NOT EXISTS bucket_changes_by_bucket ON bucket_changes (bucket, seq);
        """
    )
    op.execute(GUARD)
    for table in ("reviews", "review_votes"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_bucket_guard ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_bucket_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION bucket_guard()"
        )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '3s'")
    for table in ("reviews", "review_votes"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_bucket_guard ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bucket_guard()")
    op.execute("DROP TABLE IF EXISTS bucket_changes")
    op.execute("DROP TABLE IF EXISTS bucket_fence")
