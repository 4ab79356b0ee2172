"""`reviewlab reset --data`: every review and its photos gone, the lab still up and serving."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import httpx
from reviewlab_common import storage
from reviewlab_common.topology import Topology
from reviewlab_lab import install

from tests.integration.shop import (
    CONSISTENCY,
    KIM,
    marker,
    post_review,
    shard_primary,
    wait_photo_ready,
)
from tests.integration.shop import unique_photo as make_photo


def test_reset_data_clears_reviews_and_keeps_the_lab(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str]
) -> None:
    posted = post_review(
        client, token_for(KIM), product_id=12, body=marker("reset me"), photo=make_photo()
    )
    assert posted.status_code == 201, posted.text
    review = wait_photo_ready(client, posted.json()["id"], posted.headers[CONSISTENCY])
    keys = [str(review["photo"][k]).split("/media/", 1)[1] for k in ("original_url", "cutout_url")]

    done = subprocess.run(
        [str(install.current().bin / "reviewlab"), "reset", "--data"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "reviews deleted" in done.stdout and "product images kept" in done.stdout

    for cluster in topology.shards:
        with shard_primary(topology, cluster.name) as conn:
            for table in ("reviews", "review_votes", "outbox"):
                row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                assert row is not None and row[0] == 0, (cluster.name, table)
    s3 = storage.client(topology)
    assert not any(storage.exists(s3, key) for key in keys)
    gone = client.get(f"/api/reviews/{review['id']}", headers={CONSISTENCY: ""})
    assert gone.status_code == 404
    products = client.get("/api/products", params={"limit": 100})
    assert products.status_code == 200 and len(products.json()["items"]) >= 50
    assert storage.exists(s3, "products/1.jpg")
