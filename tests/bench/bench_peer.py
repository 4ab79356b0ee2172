"""The bench's FastAPI peer: bare_app.py beside each web server, behind the vIP's nginx.

Each peer runs on its web server's address and the next port (loadbalancer.bench_peers), with
the web servers' uvicorn settings; the vIP's ceiling server proxies them under PEER_PATH.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from reviewlab_common.topology import Topology
from reviewlab_lab import loadbalancer
from reviewlab_lab.paths import REPO

# The web servers' uvicorn flags (reviewlab_lab.render), less the app and the address.
UVICORN_FLAGS = ("--no-access-log", "--timeout-graceful-shutdown", "5")
START_S = 10.0


def peer_url(topology: Topology) -> str:
    lb = topology.one("lb")
    return f"http://{lb.host_address}:{lb.ceiling_port}{loadbalancer.PEER_PATH}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _argv(uvicorn: Path, address: str, port: int) -> list[str]:
    app = [str(uvicorn), "tests.bench.bare_app:app"]
    return [*app, "--host", address, "--port", str(port), *UVICORN_FLAGS]


@contextmanager
def running(topology: Topology) -> Iterator[str | None]:
    """Start the peers; yield the URL of their /healthz through the vIP, None if unreachable."""
    uvicorn = Path(sys.executable).with_name("uvicorn")
    peers = loadbalancer.bench_peers(topology)
    servers = [
        subprocess.Popen(
            _argv(uvicorn, address, port),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for address, port in peers
    ]
    url = f"{peer_url(topology)}healthz"
    try:
        # Each peer itself first: a refused connect through the vIP would mark it failed there.
        direct = [f"http://{address}:{port}/healthz" for address, port in peers]
        limit = time.monotonic() + START_S
        while time.monotonic() < limit and not all(_answers(u) for u in direct):
            time.sleep(0.1)
        # Under Compose the vIP runs in a container and cannot reach a process on the machine.
        yield url if _answers(url) else None
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
