"""A review shard as it was before versioned schemas: reviews and the photo-job outbox.

IF NOT EXISTS adopts a shard made before migrations existed: its tables and rows are kept,
and the revision is recorded on top of them.
"""

from alembic import op

revision = "0001_shard_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS reviews (
            id                 bigint PRIMARY KEY,
            bucket             integer NOT NULL,
            product_id         bigint NOT NULL,
            user_id            bigint NOT NULL,
            rating             smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
            body               text NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now(),
            photo_status       text CHECK (photo_status IN ('processing', 'ready', 'failed')),
            photo_original_key text,
            photo_cutout_key   text,
            photo_error        text,
            photo_attempts     integer NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS reviews_by_product ON reviews (product_id, id DESC);
        CREATE INDEX IF NOT EXISTS reviews_newest ON reviews (id DESC);
        -- Written in the same transaction as its review; a relay moves it to the Redis stream.
        CREATE TABLE IF NOT EXISTS outbox (
            id           bigserial PRIMARY KEY,
            review_id    bigint NOT NULL,
            payload      jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox; DROP TABLE reviews;")
