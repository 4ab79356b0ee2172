"""The floating vIP under Compose: two load-balancer containers on the lab's bridge share an
address through VRRP (keepalived, unicast, NET_ADMIN); the machine reaches it on the bridge."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from reviewlab_common.topology import Topology

from tests.compose.vrrp_containers import ContainerPair
from tests.integration.test_floating_vip import GAP_GOAL_S, Client


@pytest.fixture
def pair(topology: Topology) -> Iterator[ContainerPair]:
    made = ContainerPair(topology)
    try:
        made.start()
        yield made
    finally:
        made.close()


def test_the_vip_moves_to_the_standby_container_when_the_holder_is_killed(
    pair: ContainerPair,
) -> None:
    first = pair.wait_for_holder(15)
    assert first is not None, f"no member took the vIP:\n{pair.log('lb-a')}"
    # Either may win: the first whose health check passes holds, and nopreempt keeps it there.
    other = next(name for name in ("lb-a", "lb-b") if name != first)
    assert pair.wait_for_standby(other, 10), f"{other} never passed its check:\n{pair.log(other)}"
    assert httpx.get(pair.url, timeout=2).text == first
    client = Client(pair.url)
    steady = threading.Thread(target=client.run)
    steady.start()
    try:
        time.sleep(1)
        killed_at = time.monotonic()
        pair.kill(first)
        moved = None  # when the vIP first answered from lb-b
        while moved is None and time.monotonic() < killed_at + 10:
            moved = next((t for t, body in client.answered_by if body == other), None)
            time.sleep(0.05)
        time.sleep(1)
    finally:
        client.stop.set()
        steady.join(10)
    assert moved is not None, f"{other} never answered the vIP:\n{pair.log(other)}"
    print(f"the vIP answered from {other} {moved - killed_at:.2f} s after {first} was killed")
    assert pair.holder() == other
    assert client.failed == 0, f"{client.failed} GETs failed after their retry"
    assert client.longest_gap() <= GAP_GOAL_S, f"{client.longest_gap():.2f} s without an answer"
