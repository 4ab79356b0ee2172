"""The lab console's metrics and API against the real lab: every Prometheus target up,
Prometheus internal only, the console's state, its refusals and its bad paths."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from reviewlab_common import dns as lab_dns
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology
from reviewlab_lab import scrapeconfig

from tests.conftest import deadline

OUTSIDE = "127.0.1.5"  # a shopper's address: the DNS's public view


@pytest.fixture(scope="module")
def prometheus(topology: Topology) -> str:
    return topology.nodes["metrics"].url


@pytest.fixture(scope="module")
def admin(topology: Topology) -> dict[str, str]:
    return {"Authorization": f"Bearer {lab_secrets.load(topology).admin_secret}"}


def targets(prometheus: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=5)
    reply.raise_for_status()
    return list(reply.json()["data"]["activeTargets"])


def test_every_prometheus_target_is_up(topology: Topology, prometheus: str) -> None:
    wanted = {n.name for n in topology.nodes.values() if n.kind in scrapeconfig.scraped_kinds()}
    limit = time.monotonic() + deadline(30)
    while True:
        found = {t["labels"]["via"]: t for t in targets(prometheus)}
        down = {name: t["lastError"] for name, t in found.items() if t["health"] != "up"}
        if (set(found) == wanted and not down) or time.monotonic() > limit:
            break
        time.sleep(1)
    assert set(found) == wanted
    assert down == {}
    # An exporter's target speaks for the node it watches.
    assert found["lb-1-exporter"]["labels"]["node"] == "lb-1"
    assert found["lb-2-exporter"]["labels"]["node"] == "lb-2"
    assert found["redis-exporter"]["labels"]["node"] == "redis"


def test_every_exporter_reads_its_node(topology: Topology, prometheus: str) -> None:
    reply = httpx.get(
        f"{prometheus}/api/v1/query", params={"query": "nginx_up or redis_up or bind_up"}
    )
    values = {r["metric"]["node"]: float(r["value"][1]) for r in reply.json()["data"]["result"]}
    watched = {n.watches for n in topology.nodes.values() if n.watches is not None}
    assert {"lb-1", "lb-2", "edge-1", "redis", "dns"} <= watched
    assert values == dict.fromkeys(watched, 1.0)


def test_prometheus_is_internal_only(topology: Topology, vip: str) -> None:
    assert lab_dns.lookup(topology, "metrics", source=OUTSIDE, published=True) == []
    assert lab_dns.lookup(topology, "console", source=OUTSIDE, published=True) == [
        topology.nodes["console"].host_address
    ]
    reply = httpx.get(f"{vip}/api/v1/targets", timeout=5)
    assert reply.status_code == 404 and "activeTargets" not in reply.text


def test_the_console_shows_every_node_with_its_role(
    topology: Topology, console: httpx.Client
) -> None:
    state = console.get("/api/state").json()
    assert set(state["nodes"]) == set(topology.nodes)
    assert state["metrics"]["available"] is True
    roles = {name: node["role"] for name, node in state["nodes"].items()}
    for cluster in topology.clusters.values():
        members = [roles[m.name] for m in cluster.members]
        assert members.count("primary") == 1, (cluster.name, members)
    assert state["lb"]["layer"] in ("l4", "l7")
    scraped = [n for n in topology.nodes.values() if n.kind in scrapeconfig.scraped_kinds()]
    assert all(state["nodes"][n.name]["state"] == "up" for n in scraped), state["nodes"]


def test_the_page_and_its_chart_library_come_from_the_console(console: httpx.Client) -> None:
    page = console.get("/")
    assert page.status_code == 200 and 'id="diagram"' in page.text
    library = console.get("/vendor/uPlot.iife.min.js")
    assert library.status_code == 200 and "uPlot" in library.text
    series = console.get("/api/series", params={"minutes": 5}).json()
    assert set(series["charts"]) == {"throughput", "p99", "lag", "hit_ratio"}


def test_starting_chaos_needs_the_admin_secret(
    console: httpx.Client, admin: dict[str, str]
) -> None:
    refused = console.post("/api/chaos", json={"scenario": "replica-kill"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "admin_secret_required"
    wrong = console.post(
        "/api/chaos", json={"scenario": "replica-kill"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    unknown = console.post("/api/chaos", json={"scenario": "meteor"}, headers=admin)
    assert unknown.status_code == 400 and "replica-kill" in unknown.json()["error"]["message"]
    bad = console.post("/api/chaos", content=b"{", headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_json"


def test_a_run_going_is_refused_with_409(console: httpx.Client, admin: dict[str, str]) -> None:
    # A run started from the CLI announces itself; while it goes, the page cannot start one.
    phase = {"kind": "chaos", "scenario": "replica-kill", "state": "started", "text": "test run"}
    assert console.post("/api/lab-events", json=phase, headers=admin).status_code == 202
    try:
        busy = console.post("/api/chaos", json={"scenario": "replica-kill"}, headers=admin)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "chaos_running"
        assert console.get("/api/chaos").json()["running"] is True
    finally:
        done = phase | {"state": "finished", "text": "test run finished"}
        console.post("/api/lab-events", json=done, headers=admin)
    assert console.get("/api/chaos").json()["running"] is False
    unsigned = console.post("/api/lab-events", json=phase)
    assert unsigned.status_code == 401


def test_the_event_stream_carries_state_and_events(
    console: httpx.Client, admin: dict[str, str]
) -> None:
    seen: list[str] = []
    with console.stream("GET", "/api/events") as stream:
        note = {"kind": "lab", "text": "a note from the event stream test"}
        console.post("/api/lab-events", json=note, headers=admin)
        for line in stream.iter_lines():
            seen.append(line)
            if "a note from the event stream test" in line and any(
                "event: state" in s for s in seen
            ):
                break
    assert "event: history" in seen and "event: state" in seen


def test_without_prometheus_the_console_says_metrics_unavailable(
    topology: Topology, nodes: Any, console: httpx.Client
) -> None:
    nodes.stop("metrics")
    try:
        limit = time.monotonic() + deadline(10)
        while console.get("/api/state").json()["metrics"]["available"]:
            assert time.monotonic() < limit, "the console still reads metrics"
            time.sleep(0.5)
        state = console.get("/api/state").json()
        assert "did not answer" in state["metrics"]["problem"]
        # What it reads directly still shows: Patroni's roles, the vIP's mode.
        assert state["nodes"]["catalog-1"]["role"] in ("primary", "sync replica", "async replica")
        assert state["lb"] is not None
        assert state["nodes"]["web-1"]["state"] == "unknown"  # never shown as healthy
        series = console.get("/api/series")
        assert series.status_code == 503
        assert series.json()["error"]["code"] == "metrics_unavailable"
        assert console.get("/").status_code == 200
    finally:
        nodes.start("metrics")
