"""Integration fixtures: the real lab, polled for readiness before any test runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from reviewlab_common import secrets as lab_secrets
from reviewlab_common import tokens
from reviewlab_common.topology import Topology
from reviewlab_lab import ready, runtimes

from tests.conftest import deadline

T = TypeVar("T")


@pytest.fixture(scope="session")
def topology() -> Topology:
    """The topology as the running runtime runs it (REVIEWLAB_RUNTIME, else detected)."""
    return runtimes.activate()


@pytest.fixture(scope="session")
def nodes(topology: Topology) -> Any:
    """The node controller: start, stop, kill, pause nodes on either runtime."""
    from tests.integration.nodes import Nodes  # nodes imports this module

    return Nodes(topology)


@pytest.fixture(scope="session", autouse=True)
def lab_ready(topology: Topology) -> None:
    """Every node must answer its readiness probe; otherwise the lab is not up."""
    limit = time.monotonic() + deadline(60)
    pending = list(topology.nodes.values())
    while pending and time.monotonic() < limit:
        pending = [n for n in pending if not ready.probe(topology, n).ready]
        if pending:
            time.sleep(0.5)
    if pending:
        names = ", ".join(n.name for n in pending)
        pytest.fail(f"the lab is not ready ({names}): run `make up` first", pytrace=False)


@pytest.fixture(scope="session")
def vip(topology: Topology) -> str:
    """The vIP where the machine reaches it (published on its native address under Compose)."""
    return topology.nodes[topology.services["www"]].host_url


@pytest.fixture(scope="session")
def cdn(topology: Topology) -> str:
    return topology.nodes[topology.services["cdn"]].host_url


@pytest.fixture(scope="session")
def console(topology: Topology) -> Iterator[httpx.Client]:
    """The lab console, straight at its node (never through the vIP)."""
    with httpx.Client(base_url=topology.nodes["console"].host_url, timeout=10) as client:
        yield client


@pytest.fixture()
def client(vip: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=vip, timeout=15) as http:
        yield http


@pytest.fixture(scope="session")
def token_for(topology: Topology) -> Callable[[int], str]:
    secret = lab_secrets.load(topology).token_secret
    return lambda user_id: tokens.issue(secret, user_id)


@pytest.fixture()
def authored(vip: str, token_for: Callable[[int], str]) -> Iterator[Any]:
    """Reviews a test made; their authors delete them when the test ends."""
    from tests.integration.shop import Authored  # shop imports this module

    made = Authored(vip, token_for)
    yield made
    made.delete_all()


def eventually(check: Callable[[], T], *, within: float, every: float = 0.25, what: str = "") -> T:
    """Poll CHECK until it returns a truthy value or the (scaled) deadline passes."""
    limit = time.monotonic() + deadline(within)
    last: object = None
    while time.monotonic() < limit:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # keep polling; report the last failure
            last = exc
        time.sleep(every)
    raise AssertionError(f"not within {deadline(within):.0f} s: {what} (last: {last!r})")
