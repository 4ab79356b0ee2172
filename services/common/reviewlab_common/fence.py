"""The bucket fence: each shard says, per bucket, whether it takes writes for it.

The shard map in etcd says where a bucket lives; the fence is the shard's own view, kept in
the table `bucket_fence` (shard revision 0003) and checked by a trigger on every row written
to `reviews` and `review_votes`. It is what makes a move safe: a web server with a stale map
that writes to the wrong shard is refused by the database, not trusted to know better.

| state     | writes                                                                |
|-----------|-----------------------------------------------------------------------|
| open      | taken                                                                 |
| capture   | taken, and the review id logged in `bucket_changes` for the mover     |
| closed    | refused (SQLSTATE RL001), until `lease_until` passes if it is set     |

Every writer takes a shared advisory lock on its bucket for its transaction; the mover
changes a bucket's state under the exclusive lock, so a change waits for the writes in
flight and every later write sees it.
"""

from __future__ import annotations

from typing import Final

OPEN: Final = "open"
CAPTURE: Final = "capture"
CLOSED: Final = "closed"
STATES: Final = (OPEN, CAPTURE, CLOSED)
# The SQLSTATE the trigger raises for a write to a closed bucket.
BUCKET_CLOSED_SQLSTATE: Final = "RL001"
# The first key of the advisory locks (the second is the bucket): one namespace of our own.
LOCK_CLASS: Final = 5301
# A write to a bucket that is moving waits this long at most for the cutover, then answers
# 503: the mover gives up a cutover (and reopens the bucket) once its freeze passes
# FREEZE_LIMIT_S, so a waiting write sees the outcome.
FREEZE_LIMIT_S: Final = 2.0
WRITE_WAIT_S: Final = FREEZE_LIMIT_S + 0.5
# The review id's bucket, in SQL (shards.bucket_of_review): 12 random bits, then 10 of bucket.
BUCKET_OF_ID_SQL: Final = "((({id}) >> 12) & 1023)"


def bucket_of_id_sql(column: str) -> str:
    """SQL for the bucket a review id in COLUMN carries."""
    return BUCKET_OF_ID_SQL.format(id=column)
