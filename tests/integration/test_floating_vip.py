"""A floating vIP on one machine: two load balancers, each in a network namespace of its
own on a bridge, share an address through VRRP (keepalived). The pair is scratch (its own
addresses, no lab node behind it), so the test runs the same under either runtime."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from reviewlab_lab.vrrp import segment

from tests.integration.vrrp_pair import Pair, ScratchPair, native_topology

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


@dataclass
class Failover:
    """One failover under steady GETs: who held the vIP, who took it, when."""

    first: str
    other: str
    client: Client
    killed_at: float
    moved: float  # when OTHER held the address, or first answered from it

    def check_no_get_failed(self) -> None:
        assert self.client.failed == 0, f"{self.client.failed} GETs failed after their retry"
        gap = self.client.longest_gap()
        assert gap <= GAP_GOAL_S, f"{gap:.2f} s without an answer"


def fail_over(pair: Pair, kill: Callable[[str], None], by_holder: bool) -> Failover:
    """Under steady GETs, KILL the holder; wait until the other member holds the address
    (BY_HOLDER) or first answers the vIP. Either may hold it first: the first member whose
    health check passes does, and nopreempt keeps it there."""
    first = pair.wait_for_holder(15)
    assert first is not None, f"no member took the vIP:\n{pair.log(pair.names[0])}"
    other = next(name for name in pair.names if name != first)
    assert pair.wait_for_standby(other, 10), f"{other} never passed its check:\n{pair.log(other)}"
    assert httpx.get(pair.url, timeout=2).text == first
    client = Client(pair.url)
    steady = threading.Thread(target=client.run)
    steady.start()
    try:
        time.sleep(1)
        killed_at = time.monotonic()
        kill(first)
        moved = None
        while moved is None and time.monotonic() < killed_at + 10:
            if by_holder:
                moved = time.monotonic() if pair.holder() == other else None
            else:
                moved = next((t for t, body in client.answered_by if body == other), None)
            time.sleep(0.05)
        time.sleep(1)
    finally:
        client.stop.set()
        steady.join(10)
    assert moved is not None, f"{other} never took the vIP:\n{pair.log(other)}"
    print(f"{other} had the vIP {moved - killed_at:.2f} s after {first} was killed")
    return Failover(first, other, client, killed_at, moved)


def test_the_vip_moves_when_the_holders_nginx_dies_and_stays_when_it_returns(
    pair: ScratchPair,
) -> None:
    """The holder's check fails and it gives the address up with a priority-0 advert."""
    done = fail_over(pair, pair.kill_nginx, by_holder=True)
    assert [body for _, body in done.client.answered_by][-1] == done.other
    done.check_no_get_failed()
    # The old holder's nginx comes back: its check passes again, and nopreempt keeps the vIP
    # where it is.
    pair.start_nginx(done.first)
    time.sleep(4)
    assert pair.holder() == done.other, f"{done.first} took it back:\n{pair.log(done.first)}"
    assert httpx.get(pair.url, timeout=2).text == done.other


def test_the_vip_moves_when_the_holder_dies_whole(pair: ScratchPair) -> None:
    """No priority-0 advert this time: the standby waits out three missed adverts."""
    fail_over(pair, pair.kill, by_holder=False).check_no_get_failed()


def test_a_removed_segment_leaves_nothing_behind() -> None:
    made = ScratchPair(native_topology())
    made.start()
    assert segment.exists(made.segment)
    made.close()
    assert not segment.exists(made.segment)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [m for m in made.segment.members if m.namespace in namespaces]
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    # The lab's own segment (the vIP's bridge) keeps its rule; the scratch one's is gone.
    tagged = [line for line in rules.splitlines() if segment.RULE_TAG in line]
    assert not [line for line in tagged if f"-i {made.segment.bridge} " in line], tagged
    routes = subprocess.run(
        ["ip", "route", "show", "table", "local"], capture_output=True, text=True
    ).stdout
    assert made.segment.vip not in routes
