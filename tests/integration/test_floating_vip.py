"""A floating vIP on one machine: two load balancers, each in a network namespace of its
own on a bridge, share an address through VRRP (keepalived). The pair is scratch (its own
addresses, no lab node behind it), so the test runs the same under either runtime."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from reviewlab_lab.vrrp import segment

from tests.integration.vrrp_pair import ScratchPair, native_topology

# The client: a GET every 20 ms, each given 0.5 s; a failed one is retried once, 1.5 s later.
# (keepalived checks a member's nginx once a second at most often: a holder whose nginx died
# may keep the address for up to 1 s and the standby's skew, 1.2 s in all.)
EVERY_S, TIMEOUT_S, RETRY_AFTER_S = 0.02, 0.5, 1.5
# Goals: no GET fails after its retry, and no gap without an answer over this.
GAP_GOAL_S = 3.0


@dataclass
class Client:
    url: str
    failed: int = 0
    answered_by: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def get(self, http: httpx.Client) -> str | None:
        for attempt in range(2):
            try:
                return http.get(self.url, timeout=TIMEOUT_S).raise_for_status().text
            except httpx.HTTPError:
                if attempt == 0:
                    time.sleep(RETRY_AFTER_S)
        return None

    def run(self) -> None:
        with httpx.Client() as http:
            while not self.stop.is_set():
                body = self.get(http)
                if body is None:
                    self.failed += 1
                else:
                    self.answered_by.append((time.monotonic(), body))
                time.sleep(EVERY_S)

    def longest_gap(self) -> float:
        times = [t for t, _ in self.answered_by]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@pytest.fixture
def pair() -> Iterator[ScratchPair]:
    made = ScratchPair(native_topology())
    try:
        made.start()
        yield made
    finally:
        made.close()


def test_the_vip_moves_when_the_holders_nginx_dies_and_stays_when_it_returns(
    pair: ScratchPair,
) -> None:
    first = pair.wait_for_holder(10)
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
        pair.kill_nginx(first)
        moved = None  # when lb-b's interface holds the address
        while moved is None and time.monotonic() < killed_at + 10:
            moved = time.monotonic() if pair.holder() == other else None
            time.sleep(0.05)
        time.sleep(1)
    finally:
        client.stop.set()
        steady.join(10)
    assert moved is not None, f"{other} never took the vIP:\n{pair.log(other)}"
    print(f"the vIP moved to {other} {moved - killed_at:.2f} s after {first}'s nginx died")
    assert [body for _, body in client.answered_by][-1] == other
    assert client.failed == 0, f"{client.failed} GETs failed after their retry"
    assert client.longest_gap() <= GAP_GOAL_S, f"{client.longest_gap():.2f} s without an answer"
    # The old holder's nginx comes back: its check passes again, and nopreempt keeps the vIP
    # where it is.
    pair.start_nginx(first)
    time.sleep(4)
    assert pair.holder() == other, f"{first} took the vIP back:\n{pair.log(first)}"
    assert httpx.get(pair.url, timeout=2).text == other


def test_the_vip_moves_when_the_holder_dies_whole(pair: ScratchPair) -> None:
    """No priority-0 advert this time: the standby waits out three missed adverts."""
    first = pair.wait_for_holder(10)
    assert first is not None, f"no member took the vIP:\n{pair.log('lb-a')}"
    other = next(name for name in ("lb-a", "lb-b") if name != first)
    assert pair.wait_for_standby(other, 10), f"{other} never passed its check:\n{pair.log(other)}"
    client = Client(pair.url)
    steady = threading.Thread(target=client.run)
    steady.start()
    try:
        time.sleep(1)
        killed_at = time.monotonic()
        pair.kill_member(first)
        moved = None  # when the vIP first answered from lb-b
        while moved is None and time.monotonic() < killed_at + 10:
            moved = next((t for t, body in client.answered_by if body == other), None)
            time.sleep(0.05)
        time.sleep(1)
    finally:
        client.stop.set()
        steady.join(10)
    assert moved is not None, f"{other} never answered the vIP:\n{pair.log(other)}"
    print(f"the vIP answered from {other} {moved - killed_at:.2f} s after {first} died")
    assert client.failed == 0, f"{client.failed} GETs failed after their retry"
    assert client.longest_gap() <= GAP_GOAL_S, f"{client.longest_gap():.2f} s without an answer"


def test_a_removed_segment_leaves_nothing_behind() -> None:
    made = ScratchPair(native_topology())
    made.start()
    assert segment.exists(made.segment)
    made.close()
    assert not segment.exists(made.segment)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [m for m in made.segment.members if m.namespace in namespaces]
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert segment.RULE_TAG not in rules
    routes = subprocess.run(
        ["ip", "route", "show", "table", "local"], capture_output=True, text=True
    ).stdout
    assert made.segment.vip not in routes
