"""Expand: readers can mark a review helpful. A counter on the review, and who voted.

Safe while traffic runs: a column with a constant default is a catalog-only change in
Postgres 11+ (no table rewrite), and the new table is new. Both take their locks briefly;
lock_timeout makes the migration give up, not queue every request behind it, if a long
transaction holds the table. IF NOT EXISTS lets a shard that missed the bookkeeping run it
again. Nothing is contracted: older code ignores the column and the table.
"""

from alembic import op

revision = "0002_helpful_votes"
down_revision = "0001_shard_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '3s'")
    op.execute(
        "ALTER TABLE reviews ADD COLUMN IF NOT EXISTS helpful_votes integer NOT NULL DEFAULT 0"
    )
    # One vote per reader and review: a repeated vote is the same vote.
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS review_votes (
            review_id  bigint NOT NULL REFERENCES reviews (id) ON DELETE CASCADE,
            user_id    bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (review_id, user_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '3s'")
    op.execute("DROP TABLE review_votes")
    op.execute("ALTER TABLE reviews DROP COLUMN helpful_votes")
