"""The floating vIP under Compose: two load-balancer containers on the lab's bridge share an
address through VRRP (keepalived, unicast, NET_ADMIN); the machine reaches it on the bridge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reviewlab_common.topology import Topology

from tests.compose.vrrp_containers import ContainerPair
from tests.integration.test_floating_vip import fail_over


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
    done = fail_over(pair, pair.kill, by_holder=False)
    assert pair.holder() == done.other
    done.check_no_get_failed()
