"""The CDN's two tiers as the services act on them: push (pre-warm) and purge.

Two edges pull from one origin shield, which alone reads MinIO (infra/cdn). A push asks each
edge for the object, so the edge and the shield behind it hold it before a shopper does; a
purge evicts a key from the shield first, then from every edge, so no edge refills itself
from a shield that still holds the old copy. Purges need the lab's purge key (derived from
its token secret, never typed anywhere) and come from the lab's own network; anyone else
gets a 403 from nginx.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from reviewlab_common import httpclient
from reviewlab_common.photos import MEDIA_PATH
from reviewlab_common.topology import Node, Topology

log = logging.getLogger(__name__)

# The header a purge request carries the lab's purge key in (checked by nginx).
PURGE_HEADER = "X-Purge-Key"
# Where each cache tier takes purges: /purge/media/<key> evicts /media/<key>.
PURGE_PATH = "/purge"
# X-Cache-Status names the tier that answered, then that tier's own cache status.
TIERS = ("edge", "shield", "origin")


def purge_key(token_secret: str) -> str:
    """The key purges must carry: an HMAC of the lab's token secret, so no new secret to keep."""
    return hmac.new(token_secret.encode(), b"cdn-purge", hashlib.sha256).hexdigest()


def edges(topology: Topology) -> list[Node]:
    return topology.of_kind("edge")


def tiers_to_purge(topology: Topology) -> list[Node]:
    """The shield first, then every edge: an edge purged before the shield could refill
    itself from the shield's old copy."""
    return [topology.one("shield"), *edges(topology)]


def media_path(key: str) -> str:
    """The CDN path of bucket key KEY (or of a path that already is one)."""
    return key if key.startswith(MEDIA_PATH) else MEDIA_PATH + key.lstrip("/")


def tier(cache_status: str) -> str:
    """The tier in an X-Cache-Status value ('edge HIT' -> 'edge'); '' if it names none."""
    first = cache_status.split(" ", 1)[0]
    return first if first in TIERS else ""


@dataclass(frozen=True)
class Purged:
    """What one cache tier said to one purge: 'purged', 'not cached', or what went wrong."""

    node: str
    path: str
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome in ("purged", "not cached")


def _purge_one(node: Node, path: str, key: str, timeout: float) -> Purged:
    url = f"{node.url}{PURGE_PATH}{path}"
    try:
        reply = httpclient.shared().get(url, headers={PURGE_HEADER: key}, timeout=timeout)
    except httpx.HTTPError as exc:
        return Purged(node.name, path, f"no answer: {exc}")
    outcome = {200: "purged", 404: "not cached"}.get(reply.status_code)
    return Purged(node.name, path, outcome or f"refused: HTTP {reply.status_code}")


def purge(
    topology: Topology, paths: Iterable[str], key: str, *, timeout: float = 2.0
) -> list[Purged]:
    """Evict PATHS (bucket keys or /media/ paths) from the shield, then from every edge."""
    wanted = [media_path(p) for p in paths]
    done: list[Purged] = []
    for group in ([topology.one("shield")], edges(topology)):
        jobs = [(node, path) for node in group for path in wanted]
        if not jobs:
            continue
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            done += pool.map(lambda job: _purge_one(job[0], job[1], key, timeout), jobs)
    return done


def push(topology: Topology, paths: Iterable[str], *, timeout: float = 2.0) -> dict[str, str]:
    """Pre-warm every edge (and so the shield) with PATHS; returns 'edge path' -> status.

    A push that fails is logged and reported, never raised: the object is still served, the
    first shopper's request is then a MISS.
    """
    result: dict[str, str] = {}
    for path in (media_path(p) for p in paths):
        for node in edges(topology):
            try:
                reply = httpclient.shared().get(f"{node.url}{path}", timeout=timeout)
                status = reply.headers.get("X-Cache-Status", f"HTTP {reply.status_code}")
                if reply.status_code != 200:
                    status = f"HTTP {reply.status_code}"
            except httpx.HTTPError as exc:
                status = f"no answer: {exc}"
            if status.startswith(("HTTP", "no answer")):
                log.warning("push of %s to %s failed: %s", path, node.name, status)
            result[f"{node.name} {path}"] = status
    return result
