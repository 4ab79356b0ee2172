"""The Redis node's users: one ACL user per client tier, written into redis.conf."""

from __future__ import annotations

import hashlib

from reviewlab_common.queue import DEAD_LETTER_STREAM, JOBS_STREAM, RedisUser
from reviewlab_common.secrets import LabSecrets

# Redis ACL rules per user, after `resetkeys resetchannels -@all` (redis.conf.j2). The default
# user is off: a client without one of these users' passwords can run no command at all.
ACL: dict[RedisUser, str] = {
    # The lab's own tooling: provisioning, readiness probes, tests.
    "admin": "~* &* +@all",
    # The web tier only checks that Redis answers: reviews reach the stream through the
    # outbox, which the workers' relay publishes.
    "web": "+ping",
    # The workers: the relay appends jobs; the runner reads them in its group, acknowledges,
    # reclaims a silent consumer's jobs and moves the failed ones to the dead-letter stream.
    "worker": (
        f"~{JOBS_STREAM} ~{DEAD_LETTER_STREAM} +ping +xadd +xreadgroup +xack +xautoclaim "
        "+xclaim +xpending +xgroup|create +xlen +xinfo|stream"
    ),
    # The Redis exporter (the redis-exporter node): the server's counters and the job
    # streams' length, groups and pending entries; it reads no job's contents.
    "metrics": (
        f"~{JOBS_STREAM} ~{DEAD_LETTER_STREAM} +ping +info +config|get +client|list "
        "+client|setname +slowlog|get +slowlog|len +latency|latest +type +xlen +xinfo|stream "
        "+xinfo|groups "
        "+xinfo|consumers +select"
    ),
}


def acl_users(secrets: LabSecrets) -> list[tuple[str, str, str]]:
    """(user, SHA-256 of its password, rules): the `user` lines of redis.conf."""
    return [
        (user, hashlib.sha256(secrets.redis_password(user).encode()).hexdigest(), rules)
        for user, rules in ACL.items()
    ]
