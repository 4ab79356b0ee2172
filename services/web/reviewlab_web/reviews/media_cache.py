"""A deleted review's photos leave the CDN: purged from the shield and every edge."""

from __future__ import annotations

import logging

from reviewlab_common import cdn

from reviewlab_web.backends import Backends

log = logging.getLogger(__name__)
# Each tier answers a purge in well under a millisecond; a tier that is down must not hold
# the delete for long (its copy then stays until it expires or the next purge).
PURGE_TIMEOUT_S = 1.0


def forget(backends: Backends, keys: list[str]) -> None:
    """Purge KEYS (bucket keys) from every CDN tier; a tier that fails is logged."""
    if not keys:
        return
    key = cdn.purge_key(backends.secrets.token_secret)
    for done in cdn.purge(backends.topology, keys, key, timeout=PURGE_TIMEOUT_S):
        if not done.ok:
            log.warning("purge of %s on %s failed: %s", done.path, done.node, done.outcome)
