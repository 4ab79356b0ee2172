"""The API under a fuzzer: schemathesis reads the lab's own OpenAPI and generates requests.

Straight at one web server, every answer must be a documented status code, and none may be a
server error. Through the vIP, at layer 7 and at layer 4, none may be a server error either:
that is what a client of the shop meets (the vIP's own limits, 429 and 413, are the load
balancer's contract, tested in test_loadbalancer.py, so they are not held to the API's list).
Every review the fuzzer wrote is deleted afterwards: it posts as alex, and only alex's reviews
written during the run are removed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from reviewlab_common.topology import Topology

from tests.conftest import deadline
from tests.integration.nodes import Nodes
from tests.integration.shop import ALEX, auth, shard_primary

# A fixed seed: CI runs the same cases each time; change it to explore further.
SEED = 20261129
FUZZ_USER_ID = ALEX  # the fuzzer's reviews never mix with kim's demo reviews


@pytest.fixture()
def fuzz_token(topology: Topology, vip: str, token_for: Callable[[int], str]) -> Iterator[str]:
    """Alex's token; every review alex wrote while the fuzzer ran is deleted afterwards."""
    started = datetime.now(UTC)
    token = token_for(FUZZ_USER_ID)
    yield token
    for cluster in topology.shards:
        with shard_primary(topology, cluster.name) as conn:
            rows = conn.execute(
                "SELECT id FROM reviews WHERE user_id = %s AND created_at >= %s",
                (FUZZ_USER_ID, started),
            ).fetchall()
        for (review_id,) in rows:
            gone = httpx.delete(f"{vip}/api/reviews/{review_id}", headers=auth(token), timeout=10)
            assert gone.status_code in (204, 404), gone.text


def fuzz(base_url: str, token: str, report_dir: Path, *, checks: str, examples: int) -> None:
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{base_url}/openapi.json",
            "--url",
            base_url,
            "--checks",
            checks,
            "--max-examples",
            str(examples),
            "--seed",
            str(SEED),
            "--header",
            f"Authorization: Bearer {token}",
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=deadline(240),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_no_server_error_and_no_undocumented_status(
    topology: Topology, fuzz_token: str, tmp_path: Path
) -> None:
    web = topology.of_kind("web")[0]
    fuzz(
        web.url,
        fuzz_token,
        tmp_path,
        checks="not_a_server_error,status_code_conformance",
        examples=100,
    )


@pytest.mark.parametrize("layer", ["l7", "l4"])
def test_no_server_error_through_the_vip(
    vip: str, nodes: Nodes, fuzz_token: str, tmp_path: Path, layer: str
) -> None:
    with nodes.vip_in_layer(layer):
        fuzz(vip, fuzz_token, tmp_path, checks="not_a_server_error", examples=40)
