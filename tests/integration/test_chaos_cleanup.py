"""A chaos run's load leaves no test rows in the shop: reviews, outbox rows, Idempotency-Keys."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from reviewlab_common.topology import Topology
from reviewlab_lab.chaos import report, run
from reviewlab_lab.chaos.load import LOAD_USER, Load

from tests.integration.shop import ALEX, auth, shard_primary

# Long enough for every writer to be acknowledged a few times.
LOAD_S = 2.0


def left_behind(topology: Topology, load: Load) -> dict[str, int]:
    """The load user's rows of the run still stored, per shard, and its keys in the catalog."""
    found = {}
    for cluster in topology.shards:
        with shard_primary(topology, cluster.name) as conn:
            row = conn.execute(
                "SELECT count(*) FROM reviews WHERE user_id = %s AND starts_with(body, %s)",
                (LOAD_USER, load.body("")),
            ).fetchone()
            found[cluster.name] = int(row[0]) if row else -1
    with shard_primary(topology, topology.catalog.name) as conn:
        row = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE user_id = %s AND starts_with(key, %s)",
            (LOAD_USER, f"{load.run_id}-"),
        ).fetchone()
        found["idempotency_keys"] = int(row[0]) if row else -1
    return found


def test_the_load_is_read_back_then_deleted(
    topology: Topology, vip: str, token_for: Callable[[int], str]
) -> None:
    load = Load(topology, writers=2, readers=1)
    load.start()
    time.sleep(LOAD_S)
    load.stop()
    # What a fuzzer running beside a chaos run does: it posts a body it read from the shop.
    body = next(o.key for o in load.outcomes if o.kind == "write" and o.ok)
    copy = httpx.post(
        f"{vip}/api/reviews",
        data={"product_id": "3", "rating": "2", "body": load.body(body)},
        headers=auth(token_for(ALEX)),
        timeout=15,
    )
    assert copy.status_code == 201, copy.text
    try:
        writes = report.read_back(topology, load)
        assert writes["acknowledged"] > 0 and writes["lost"] == 0, writes
        assert writes["duplicates"] == 0, writes
        assert writes["posted_by_others"] == 1, writes
        stored = left_behind(topology, load)
        assert sum(stored[c.name] for c in topology.shards) == writes["acknowledged"], stored
        assert stored["idempotency_keys"] == writes["acknowledged"], stored
    finally:
        removed = run.remove_writes(topology, load)
        # The copy is alex's: the run leaves it to its author.
        gone = httpx.delete(
            f"{vip}/api/reviews/{copy.json()['id']}", headers=auth(token_for(ALEX)), timeout=15
        )
        assert gone.status_code == 204, gone.text
    assert removed.reviews == writes["acknowledged"]
    assert removed.keys == writes["acknowledged"]
    nothing = {c.name: 0 for c in topology.shards} | {"idempotency_keys": 0}
    assert left_behind(topology, load) == nothing
