"""The lab console's pure parts: the scrape config, node states, figures, events, the diagram."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

import pytest
from reviewlab_common.topology import Topology, load
from reviewlab_console import diagram, edgelog, events, figures, snapshot
from reviewlab_console.labstate import LabState, Member, member_of
from reviewlab_console.prom import Sample, Target, parse_target
from reviewlab_lab import scrapeconfig


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load()


def _targets(document: dict[str, object]) -> list[dict[str, object]]:
    jobs = document["scrape_configs"]
    assert isinstance(jobs, list)
    return [entry for job in jobs for entry in job["static_configs"]]


def test_every_node_prometheus_can_read_is_one_target(topology: Topology) -> None:
    document = scrapeconfig.scrape_config(topology, Path("/run/token"))
    labels = [t["labels"] for t in _targets(document)]
    vias = [label["via"] for label in labels]  # type: ignore[index]
    assert len(vias) == len(set(vias))
    expected = [n.name for n in topology.nodes.values() if n.kind in scrapeconfig.scraped_kinds()]
    assert sorted(vias) == sorted(expected)
    # Every node is read, directly or by its exporter, but for kinds the lab does not know.
    read = {label["node"] for label in labels} | set(vias)  # type: ignore[index]
    assert read | set(scrapeconfig.unscraped(topology)) == set(topology.nodes)


def test_a_new_web_server_is_scraped(topology: Topology) -> None:
    web = topology.nodes["web-1"]
    bigger = replace(
        topology,
        nodes={**topology.nodes, "web-9": replace(web, name="web-9", address="127.0.0.19")},
    )
    targets = _targets(scrapeconfig.scrape_config(bigger, Path("/t")))
    assert {
        "targets": ["127.0.0.19:8000"],
        "labels": {"node": "web-9", "kind": "web", "via": "web-9"},
    } in targets


def test_exporters_speak_for_the_node_they_watch(topology: Topology) -> None:
    targets = _targets(scrapeconfig.scrape_config(topology, Path("/t")))
    for member in ("lb-1", "lb-2"):
        via = f"{member}-exporter"
        lb = next(t for t in targets if t["labels"]["via"] == via)  # type: ignore[index]
        assert lb["labels"] == {"node": member, "kind": "lb", "via": via}
    patroni = next(t for t in targets if t["labels"]["via"] == "catalog-1")  # type: ignore[index]
    catalog = topology.nodes["catalog-1"]
    assert patroni["targets"] == [f"{catalog.address}:{catalog.rest_port}"]  # Patroni's REST port


def test_minio_is_read_with_its_bearer_token_file(topology: Topology) -> None:
    document = scrapeconfig.scrape_config(topology, Path("/run/token"))
    minio = next(j for j in document["scrape_configs"] if j["job_name"] == "minio")  # type: ignore[union-attr]
    assert minio["metrics_path"] == scrapeconfig.MINIO_METRICS_PATH
    assert minio["authorization"] == {"type": "Bearer", "credentials_file": "/run/token"}
    assert document["global"]["scrape_interval"] == "2s"  # type: ignore[index]


def test_the_minio_token_is_a_jwt_signed_with_the_secret_key() -> None:
    token = scrapeconfig.minio_bearer_token("access", "secret")
    header, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims == {"exp": scrapeconfig.MINIO_TOKEN_EXPIRES, "sub": "access", "iss": "prometheus"}
    expected = hmac.new(b"secret", f"{header}.{body}".encode(), hashlib.sha512).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert token == scrapeconfig.minio_bearer_token("access", "secret")  # stable across renders


def _target(node: str, health: str = "up", error: str = "", via: str | None = None) -> Target:
    return Target(node, via or node, "web", health, error)


def test_node_states_from_scrapes(topology: Topology) -> None:
    targets = [
        _target("web-1"),
        _target("web-2", "down", 'Get "http://127.0.0.12:8000/metrics": connection refused'),
        _target("web-3", "down", "Get ...: context deadline exceeded"),
        _target("lb-1", via="lb-1-exporter"),
        _target("redis", via="redis-exporter"),
        _target("edge-1", "down", "refused", via="edge-1-exporter"),
    ]
    exported = [Sample({"node": "lb-1"}, 1.0), Sample({"node": "redis"}, 0.0)]
    states = figures.node_states(topology, targets, exported)
    assert states["web-1"].state == figures.UP
    assert states["web-2"].state == figures.DOWN
    assert states["web-3"].state == figures.NO_ANSWER  # frozen: accepts, never answers
    assert states["lb-1"].state == figures.UP and states["lb-1-exporter"].state == figures.UP
    assert states["redis"].state == figures.DOWN  # its exporter answers, Redis does not
    assert states["edge-1"].state == figures.UNKNOWN  # nobody can say: not healthy
    assert states["edge-1-exporter"].state == figures.DOWN
    assert states["dns"].state == figures.UNKNOWN  # no target at all (missing from the scrape)


def test_a_target_reads_as_prometheus_lists_it() -> None:
    raw = {"labels": {"node": "lb-1", "via": "lb-1-exporter", "kind": "lb"}, "health": "up"}
    assert parse_target(raw) == Target("lb-1", "lb-1-exporter", "lb", "up", "")


def test_the_union_query_tags_every_figure() -> None:
    query = figures.union_query({"a": "up", "b": "x"})
    assert (
        query
        == 'label_replace(up, "figure", "a", "", "") or label_replace(x, "figure", "b", "", "")'
    )


def test_figures_give_each_web_server_its_share(topology: Topology) -> None:
    found = figures.by_figure(
        [
            Sample({"figure": "req_s", "node": "web-1"}, 30.0),
            Sample({"figure": "req_s", "node": "web-2"}, 10.0),
            Sample({"figure": "p99_s", "node": "web-1"}, 0.25),
            Sample({"figure": "p99_s", "node": "web-2"}, float("nan")),
            Sample({"figure": "edge_requests_s", "node": "edge-1", "cache": "HIT"}, 3.0),
            Sample({"figure": "edge_requests_s", "node": "edge-1", "cache": "MISS"}, 1.0),
            Sample({"figure": "edge_origin_s", "node": "edge-1"}, 1.0),
            Sample({"figure": "stream_length", "stream": "photo-jobs"}, 4.0),
        ]
    )
    computed = figures.compute(topology, found)
    assert computed.web["web-1"] == {"req_s": 30.0, "p99_ms": 250.0, "errors_s": 0.0, "share": 0.75}
    assert computed.web["web-2"]["p99_ms"] is None  # no request in the window: no p99
    assert computed.web["web-3"]["req_s"] is None  # not read at all: not zero
    assert computed.edges["edge-1"] == {"req_s": 4.0, "hit_ratio": 0.75, "origin_s": 1.0}
    assert computed.streams["photo-jobs"] == {"length": 4.0, "pending": 0.0}


def test_lag_in_seconds() -> None:
    assert figures.lag_seconds(0, 100.0, 500.0) == 0.0
    assert figures.lag_seconds(8192, 100.0, 103.5) == 3.5
    assert figures.lag_seconds(None, 100.0, 103.5) is None


def test_patroni_members_read_in_the_labs_words() -> None:
    assert member_of({"role": "leader", "state": "running", "lag": 0}) == Member(
        "primary", "running", None
    )
    assert (
        member_of({"role": "sync_standby", "state": "streaming", "lag": 12}).role == "sync replica"
    )


def _snapshot(topology: Topology, **lab: object) -> dict[str, object]:
    state = LabState(**lab)  # type: ignore[arg-type]
    return snapshot.build(topology, {}, figures.Figures(), state, 1000.0, None)


def test_without_prometheus_postgres_state_comes_from_patroni(topology: Topology) -> None:
    members = {
        "catalog-1": Member("primary", "running", None),
        "catalog-2": Member("sync replica", "stopped", None),
    }
    built = snapshot.build(topology, None, None, LabState(members=members), 1.0, "no answer")
    nodes = built["nodes"]
    assert nodes["catalog-1"]["state"] == "up" and nodes["catalog-1"]["role"] == "primary"
    assert nodes["catalog-2"]["state"] == "stopped"
    assert nodes["catalog-3"]["state"] == "down"  # Patroni no longer lists it
    assert nodes["web-1"]["state"] == figures.UNKNOWN  # nothing else can tell
    assert built["metrics"] == {"available": False, "problem": "no answer"}


def test_events_name_what_changed(topology: Topology) -> None:
    before = _snapshot(
        topology,
        members={"catalog-1": Member("primary", "running", None)},
        records={"primary.catalog": ["127.0.0.21"]},
        lb_mode={"layer": "l7", "algorithm": "round_robin"},
    )
    after = _snapshot(
        topology,
        members={"catalog-1": Member("sync replica", "running", None)},
        records={"primary.catalog": ["127.0.0.22"]},
        lb_mode={"layer": "l7", "algorithm": "least_conn"},
    )
    texts = [e.text for e in events.changes(before, after)]
    assert "catalog-1: primary → sync replica" in texts
    assert "primary.catalog now points at 127.0.0.22" in texts
    assert "load balancer: l7 round_robin → l7 least_conn" in texts
    assert events.changes(None, after) == []


def test_the_bus_keeps_recent_events_and_feeds_listeners() -> None:
    bus = events.EventBus()
    queue = bus.listen()
    bus.note("chaos", "fault: kill catalog-2")
    assert queue.get_nowait()["text"] == "fault: kill catalog-2"
    assert [e["id"] for e in bus.recent()] == [1]


def test_the_diagram_has_a_box_per_node(topology: Topology) -> None:
    svg = diagram.svg(topology)
    for name in topology.nodes:
        assert f'id="node-{name}"' in svg
    assert 'id="group-catalog"' in svg and 'marker-end="url(#head)"' in svg


def test_a_node_of_a_new_kind_still_gets_a_box(topology: Topology) -> None:
    web = topology.nodes["web-1"]
    odd = replace(web, name="search-1", kind="search", address="127.0.0.120")
    svg = diagram.svg(replace(topology, nodes={**topology.nodes, "search-1": odd}))
    assert 'id="node-search-1"' in svg and "kind-search" in svg


def test_an_edges_syslog_line_is_counted() -> None:
    assert edgelog.parse(b"<190>Dec  2 10:30:00 edge: edge-1\tHIT\t-") == ("edge-1", "HIT", 0)
    line = b"<190>Dec  2 10:30:00 edge: edge-1\tMISS\t127.0.0.60:9000"
    assert edgelog.parse(line) == ("edge-1", "MISS", 1)
    assert edgelog.parse(b"<190>Dec  2 10:30:00 other: HIT\t-") is None
