"""The API under a fuzzer: schemathesis reads the lab's own OpenAPI and generates requests.

Every answer must be a documented status code, and none may be a server error. The fuzzer
talks to one web server directly: the vIP's own limits (429, 413) are the load balancer's
contract, tested in test_loadbalancer.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from reviewlab_common.topology import Topology

from tests.conftest import deadline

# A fixed seed: CI runs the same cases each time; change it to explore further.
SEED = 20261129
FUZZ_USER_ID = 2  # alex: the fuzzer's reviews never mix with kim's demo reviews


def test_no_server_error_and_no_undocumented_status(
    topology: Topology, token_for: Callable[[int], str], tmp_path: Path
) -> None:
    web = topology.of_kind("web")[0]
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{web.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--max-examples",
            "100",
            "--seed",
            str(SEED),
            "--header",
            f"Authorization: Bearer {token_for(FUZZ_USER_ID)}",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=deadline(240),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
