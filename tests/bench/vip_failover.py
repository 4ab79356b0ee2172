"""The vIP pair's failover, measured: the holder SIGKILLed several times under steady reads.

`python -m tests.bench.vip_failover [--kills 5] [--clients 2]` kills whichever load balancer
holds the vIP, times the address's move (from the kill to the first answer of the other
member on the vIP, probed every 20 ms), counts the reads that failed at their first try and
after the client's one retry, waits for the killed member to come back as the standby, and
goes on with the next kill. It prints each kill and the median; `make bench` adds the figure
to docs/benchmarks.md (suite.py).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from reviewlab_common import httpclient
from reviewlab_common.topology import Topology
from reviewlab_lab import runtimes
from reviewlab_lab.chaos.run import CLIENT_RETRY_S
from reviewlab_lab.runtimes.base import Runtime

KILLS = 5
MAX_KILLS = 10
CLIENTS = 2
PROBE_S = 0.02
# A move takes about a second; a member takes a few to come back as the standby.
MOVE_LIMIT_S = 15.0
BACK_LIMIT_S = 60.0
# After the killed member answers again: its health check must pass twice (rise 2, every 1 s)
# before it may stand in for the new holder.
STANDBY_READY_S = 3.0
READ_PATH = "/api/products/{}"


@dataclass(frozen=True)
class Kill:
    killed: str
    took_over: str
    moved_s: float  # the kill -> the other member answers on the vIP
    reads: int  # reads that began in the kill's window
    failed_first: int  # ... that failed at their first try
    failed_after_retry: int  # ... and again at the one retry


@dataclass
class Readers:
    """Clients reading through the vIP; each repeats a read that failed once, CLIENT_RETRY_S
    later, as the chaos load does."""

    host: str
    port: int
    clients: int

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # (began, failed at the first try, failed after the retry)
        self.reads: list[tuple[float, bool, bool]] = []
        self.threads = [
            threading.Thread(target=self._loop, daemon=True) for _ in range(self.clients)
        ]

    def _get(self, conn: http.client.HTTPConnection, path: str) -> bool:
        try:
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            return reply.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            return False

    def _loop(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        product = 1
        while not self.stop.is_set():
            began = time.monotonic()
            path = READ_PATH.format(product)
            first = self._get(conn, path)
            again = first
            if not first:
                time.sleep(CLIENT_RETRY_S)
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                again = self._get(conn, path)
            with self.lock:
                self.reads.append((began, not first, not again))
            product = product % 50 + 1

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def window(self, since: float, until: float) -> list[tuple[float, bool, bool]]:
        with self.lock:
            return [r for r in self.reads if since <= r[0] < until]


def member_answers(topology: Topology, name: str) -> bool:
    """Does member NAME's nginx answer at its own address (not the vIP)?"""
    member = topology.nodes[name]
    try:
        reply = httpclient.get(f"http://{member.address}:{member.ceiling_port}/", timeout=0.5)
    except httpx.HTTPError:
        return False
    return reply.status_code < 500


def wait_for(check: Callable[[], bool], limit_s: float, what: str) -> float:
    """Poll CHECK every PROBE_S until it is true; the seconds it took."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > limit_s:
            raise RuntimeError(f"{what} within {limit_s:.0f} s")
        time.sleep(PROBE_S)
    return time.monotonic() - began


def one_kill(topology: Topology, runtime: Runtime, readers: Readers) -> Kill:
    holder = runtime.vip_holder()
    if holder is None:
        raise RuntimeError("no load balancer holds the vIP: is the lab up?")
    killed_at = time.monotonic()
    runtime.kill(holder)
    moved = wait_for(
        lambda: runtime.vip_holder() not in (None, holder),
        MOVE_LIMIT_S,
        "the standby did not answer on the vIP",
    )
    took_over = runtime.vip_holder() or "?"
    wait_for(
        lambda: member_answers(topology, holder) and runtime.vip_carriers() == [took_over],
        BACK_LIMIT_S,
        f"{holder} did not come back as the standby",
    )
    time.sleep(STANDBY_READY_S)
    # Every read that began from just before the kill (one in flight then) to the end of the
    # move and a retry after it.
    reads = readers.window(killed_at - 1.0, killed_at + moved + CLIENT_RETRY_S + 1.0)
    return Kill(
        holder,
        took_over,
        round(moved, 3),
        len(reads),
        sum(first for _, first, _ in reads),
        sum(after for _, _, after in reads),
    )


def measure(topology: Topology, kills: int = KILLS, clients: int = CLIENTS) -> list[Kill]:
    """KILLS kills of the holder, one after the other, under CLIENTS steady readers."""
    if not 1 <= kills <= MAX_KILLS:
        raise ValueError(f"kills must be 1..{MAX_KILLS}")
    runtime = runtimes.of(topology)
    vip = topology.vip
    readers = Readers(vip.host_address, vip.port, clients)
    readers.start()
    found = []
    try:
        time.sleep(2.0)
        for _ in range(kills):
            found.append(one_kill(topology, runtime, readers))
    finally:
        readers.finish()
    return found


def summary(found: list[Kill]) -> str:
    median = statistics.median(k.moved_s for k in found)
    first = statistics.median(k.failed_first for k in found)
    after = sum(k.failed_after_retry for k in found)
    return (
        f"median {median:.2f} s over {len(found)} kills; reads failed per kill at the first "
        f"try: median {first:g}, after the one retry: {after} in all"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=KILLS, help=f"1..{MAX_KILLS} ({KILLS})")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args()
    if not 1 <= args.kills <= MAX_KILLS or not 1 <= args.clients <= 16:
        parser.error(f"--kills 1..{MAX_KILLS}, --clients 1..16")
    topology = runtimes.activate()
    found = measure(topology, args.kills, args.clients)
    print(f"{'killed':<8}{'took over':<11}{'moved s':>8}{'reads':>7}{'failed':>8}{'retry':>7}")
    for kill in found:
        print(
            f"{kill.killed:<8}{kill.took_over:<11}{kill.moved_s:>8.2f}{kill.reads:>7}"
            f"{kill.failed_first:>8}{kill.failed_after_retry:>7}"
        )
    print(summary(found))


if __name__ == "__main__":
    main()
