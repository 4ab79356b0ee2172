"""The bench's FastAPI peer: bare_app.py beside each web server, behind the vIP's nginx.

Each peer runs where its web server runs (on the machine natively, inside the web server's
container under Compose: Runtime.exec_command), on the web server's address and the next
port (loadbalancer.bench_peers), with the web servers' uvicorn settings; the vIP's ceiling
server proxies them under PEER_PATH. A peer ends itself after LIFETIME_S, so one left by a
killed bench (or inside a container, where stopping `docker exec` does not stop it) is gone
soon after.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from reviewlab_common.topology import Topology
from reviewlab_lab import install, loadbalancer
from reviewlab_lab.runtimes.base import Runtime

BARE_APP = Path(__file__).with_name("bare_app.py")
# The web servers' uvicorn settings (reviewlab_lab.render: --no-access-log,
# --timeout-graceful-shutdown 5), as uvicorn.run() takes them.
SERVE = """
import os, threading, uvicorn
threading.Timer({lifetime}, os._exit, (0,)).start()
uvicorn.run(app, host={address!r}, port={port}, access_log=False, timeout_graceful_shutdown=5)
"""
START_S = 20.0
LIFETIME_S = 300


def peer_url(topology: Topology) -> str:
    lb = topology.vip
    return f"http://{lb.host_address}:{lb.ceiling_port}{loadbalancer.PEER_PATH}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def argv(address: str, port: int, lifetime_s: int = LIFETIME_S) -> list[str]:
    """The lab venv's Python running bare_app.py's source on ADDRESS:PORT (the same path in
    the images as on the machine)."""
    serve = SERVE.format(lifetime=lifetime_s, address=address, port=port)
    python = install.current().venv / "bin" / "python"
    return [str(python), "-c", BARE_APP.read_text() + serve]


@contextmanager
def running(topology: Topology, runtime: Runtime) -> Iterator[str | None]:
    """Start the peers; yield the URL of their /healthz through the vIP, None if unreachable."""
    webs = topology.of_kind("web")
    bench_peers = loadbalancer.bench_peers(topology)
    servers = [
        subprocess.Popen(
            runtime.exec_command(web.name, argv(address, port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for web, (address, port) in zip(webs, bench_peers, strict=True)
    ]
    url = f"{peer_url(topology)}healthz"
    try:
        # Each peer itself first (on the lab network's addresses under Compose, which exists
        # while the lab runs): a refused connect through the vIP would mark it failed there.
        direct = [f"http://{address}:{port}/healthz" for address, port in bench_peers]
        limit = time.monotonic() + START_S
        while time.monotonic() < limit and not all(_answers(u) for u in direct):
            time.sleep(0.2)
        yield url if _answers(url) else None
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
