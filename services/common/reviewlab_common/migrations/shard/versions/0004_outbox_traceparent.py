"""Expand: an outbox row carries the trace of the request that wrote it.

The relay copies the column to the stream entry and the worker continues that trace, so one
trace shows the POST, the commit, the relay, the wait on the stream and the worker's stages.
A nullable column without a default is a catalog-only change (no table rewrite), taken under
a short lock_timeout; older code writes no value and the relay then starts no trace.
"""

from alembic import op

revision = "0004_outbox_traceparent"
down_revision = "0003_bucket_fence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '3s'")
    op.execute("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '3s'")
    op.execute("ALTER TABLE outbox DROP COLUMN traceparent")
