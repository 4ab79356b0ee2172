"""The console page in headless Chromium: every node on the diagram with its live role, a lost
catalog replica shown down and back, an LB switch shown, the chaos button refused without the
secret. The tests that break something run alone in the lab (a fault at a time)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import dnsrecords, loadbalancer, runtimes

from tests.integration.browser import Browser

STATE_OF = "(name) => document.getElementById('node-' + name).dataset.state"
LIVE = "document.querySelector('#node-web-1').dataset.state !== undefined"


@pytest.fixture()
def page(topology: Topology, tmp_path: Path) -> Iterator[Browser]:
    """The console open in Chromium, which resolves only the lab's public names."""
    resolve = {
        topology.fqdn(service): topology.nodes[target].host_address
        for service, target in topology.services.items()
    }
    browser = Browser(tmp_path / "profile", resolve, size="1600,1300")
    console = topology.nodes[topology.services["console"]]
    browser.navigate(f"http://{topology.fqdn('console')}:{console.port}/")
    browser.wait_for(LIVE, within=15, what="the first refresh on the page")
    yield browser
    browser.close()


def state_on_page(page: Browser, name: str) -> Any:
    return page.evaluate(f"({STATE_OF})({json.dumps(name)})")


def roles_on_page(page: Browser) -> dict[str, str]:
    return dict(
        page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#diagram .node[data-node]')]"
            ".map(n => [n.dataset.node, n.dataset.role]))"
        )
    )


def test_every_node_is_on_the_diagram_with_its_live_role(topology: Topology, page: Browser) -> None:
    shown = roles_on_page(page)
    assert set(shown) - {"client"} == set(topology.nodes)
    # Roles as Patroni says them right now, read apart from the console.
    words = {"leader": "primary", "sync_standby": "sync replica", "replica": "async replica"}
    for cluster in topology.clusters.values():
        members = dnsrecords.patroni_members(cluster)
        for name, member in members.items():
            assert shown[name] == words[member["role"]], (name, shown[name], member)
    # The vIP's holder as the machine sees it, read apart from the console.
    holder = runtimes.of(topology).vip_holder()
    assert holder in ("lb-1", "lb-2")
    assert shown["vip"] == f"held by {holder}"
    assert shown[holder].startswith("active ")
    (standby,) = {lb.name for lb in topology.load_balancers()} - {holder}
    assert shown[standby].startswith("standby ")
    assert page.evaluate("document.querySelector('#metrics-status').textContent") == "metrics: live"


def _replica(topology: Topology) -> str:
    members = dnsrecords.patroni_members(topology.catalog)
    return next(name for name, m in members.items() if m["role"] != "leader")


def test_a_lost_catalog_replica_shows_down_then_back(
    topology: Topology, nodes: Any, page: Browser
) -> None:
    replica = _replica(topology)
    assert state_on_page(page, replica) == "up"
    nodes.runtime.lose(replica)  # every process of the node killed; it stays down
    try:
        page.wait_for(
            f"['down', 'no answer', 'stopped'].includes(({STATE_OF})({json.dumps(replica)}))",
            within=10,
            what=f"{replica} shown down",
        )
        feed = page.evaluate("document.querySelector('#events').textContent")
        assert f"{replica} is" in feed
    finally:
        nodes.start(replica)
    page.wait_for(
        f"({STATE_OF})({json.dumps(replica)}) === 'up'", within=60, what=f"{replica} back up"
    )


def test_a_switch_to_least_conn_shows_on_the_page(nodes: Any, page: Browser) -> None:
    default = loadbalancer.LbMode()
    nodes.set_lb("l7", "least_conn")
    try:
        page.wait_for(
            "document.querySelector('#lb-mode').textContent.includes('least_conn') && "
            "document.querySelector('#node-lb-1').dataset.role.includes('least_conn') && "
            "document.querySelector('#node-lb-2').dataset.role.includes('least_conn') && "
            "document.querySelector('#events').textContent.includes('→ l7 least_conn')",
            # The console's feed polls the lab; on two busy cores a round can take seconds.
            within=30,
            what="the vIP's new algorithm on the page and in the feed",
        )
    finally:
        nodes.set_lb(default.layer, default.algorithm)


def test_the_chaos_button_refuses_without_the_secret(page: Browser) -> None:
    page.wait_for(
        "document.querySelector('#chaos-scenario').options.length > 0",
        within=10,
        what="the scenarios listed",
    )
    page.evaluate("document.querySelector('#chaos-secret').value = ''")
    page.evaluate("document.querySelector('#chaos-form').requestSubmit()")
    status = page.wait_for(
        "document.querySelector('#chaos-status').textContent.includes('refused') && "
        "document.querySelector('#chaos-status').textContent",
        within=10,
        what="the refusal shown",
    )
    assert "(401)" in status and "admin secret" in status
