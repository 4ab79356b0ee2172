"""Distributed tracing on the real lab: one trace from the vIP to the cutout upload, the
trace id on every answer, a client's traceparent continued, and a trace store that is down
costing a request nothing."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reviewlab_common import tracing
from reviewlab_common.topology import Topology
from reviewlab_lab import install

from tests.integration.browser import Browser
from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import (
    CONSISTENCY,
    KIM,
    Authored,
    marker,
    post_review,
    unique_photo,
    wait_photo_ready,
)

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
STORE = "traces"
REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.fixture(scope="module")
def store(topology: Topology) -> str:
    return tracing.store_url(topology, from_machine=True)


def spans_of(store: str, trace_id: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{store}/api/v2/trace/{trace_id}", timeout=5)
    return list(reply.json()) if reply.status_code == 200 else []


def named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s['name'] for s in spans]}"
    return found[0]


def reviewlab(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(install.current().bin / "reviewlab"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# One span of each hop; each node sends its own spans, about once a second.
HOPS = ("post /api/reviews", "outbox insert", "relay publish", "queue wait", "photo job")


def complete(spans: list[dict[str, Any]]) -> bool:
    """Every node's spans reached the store: each hop's, and the job's last (the photo marked
    ready after the cutout upload)."""
    names = {s["name"] for s in spans}
    return (
        set(HOPS) <= names
        and "cutout upload" in names
        and any(
            s["name"] == "update" and s["localEndpoint"]["serviceName"].startswith("worker")
            for s in spans
        )
    )


@pytest.fixture()
def traced_review(
    client: httpx.Client, token_for: Callable[[int], str], authored: Authored, store: str
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """A review with a photo, its cutout made: the review, its trace id, the trace's spans."""
    posted = post_review(
        client, token_for(KIM), product_id=7, body=marker("Traced"), photo=unique_photo()
    )
    review = authored.add(posted, KIM)
    trace_id = posted.headers["X-Trace-Id"]
    assert TRACE_ID.match(trace_id)
    wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY])
    spans = eventually(
        lambda: (found := spans_of(store, trace_id)) and complete(found) and found,
        within=15,
        what=f"trace {trace_id} with the worker's spans in the store",
    )
    return review, trace_id, spans


@pytest.fixture()
def browser(topology: Topology, tmp_path: Path) -> Iterator[Browser]:
    """Chromium that resolves the trace UI's public name, and nothing else."""
    store = topology.nodes[topology.services[STORE]]
    opened = Browser(tmp_path / "profile", {topology.fqdn(STORE): store.host_address}, "1400,1500")
    yield opened
    opened.close()


def test_a_review_with_a_photo_is_one_trace_from_the_vip_to_the_cutout_upload(
    topology: Topology, traced_review: tuple[dict[str, Any], str, list[dict[str, Any]]]
) -> None:
    review, trace_id, spans = traced_review
    assert {s["traceId"] for s in spans} == {trace_id}

    web = one(spans, "post /api/reviews")
    assert web["kind"] == "SERVER" and web["localEndpoint"]["serviceName"].startswith("web-")
    assert web["tags"]["review.id"] == str(review["id"])
    # The vIP minted the trace: the web server's span names the vIP's as its parent.
    assert web["parentId"] and not [s for s in spans if s["id"] == web["parentId"]]
    routing = one(spans, "shard routing")
    assert routing["tags"]["reviewlab.shard"] == review["shard"]
    primary_addresses = {m.address for m in topology.clusters[review["shard"]].members}
    review_insert = next(
        s
        for s in named(spans, "insert")
        if s["parentId"] == web["id"] and "INSERT INTO reviews" in s["tags"]["db.statement"]
    )
    assert review_insert["tags"]["net.peer.name"] in primary_addresses
    outbox = one(spans, "outbox insert")
    relay = one(spans, "relay publish")
    job = one(spans, "photo job")
    infer = one(spans, "infer")
    upload = one(spans, "cutout upload")
    # Child spans across both asynchronous hops: outbox row -> relay -> stream -> worker.
    assert relay["parentId"] == outbox["id"] and relay["kind"] == "PRODUCER"
    assert job["parentId"] == relay["id"] and job["kind"] == "CONSUMER"
    assert one(spans, "queue wait")["parentId"] == relay["id"]
    assert infer["parentId"] == job["id"] and upload["parentId"] == job["id"]
    puts = [s for s in spans if s["name"] == "s3.putobject" and s["parentId"] == upload["id"]]
    assert len(puts) == 2  # the cutout's photo and its mask
    in_order = [web, review_insert, relay, job, infer, upload]
    starts = [s["timestamp"] for s in in_order]
    assert starts == sorted(starts), [s["name"] for s in in_order]
    assert job["localEndpoint"]["serviceName"].startswith("worker-")

    # The same trace from what a user has: the review's id.
    shown = reviewlab("trace", str(review["id"]))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"trace {trace_id}: ")
    assert "photo job" in shown.stdout and "cutout upload" in shown.stdout
    assert shown.stdout.rstrip().endswith(f"/zipkin/traces/{trace_id}")

    # The vIP logged the trace id with the request.
    logged = reviewlab("logs", "lb.access", "-n", "500")
    assert any(
        line.endswith(f"\t{trace_id}") and "POST" in line for line in logged.stdout.splitlines()
    )


def test_the_trace_ui_shows_the_trace_and_the_shop_page_links_it(
    topology: Topology,
    client: httpx.Client,
    traced_review: tuple[dict[str, Any], str, list[dict[str, Any]]],
    browser: Browser,
) -> None:
    review, trace_id, _ = traced_review
    page = client.get("/", params={"posted": review["id"]})
    assert page.status_code == 200
    link = f"{tracing.ui_url(topology)}?annotationQuery=review.id%3D{review['id']}&amp;"
    assert link in page.text
    browser.navigate(tracing.ui_url(topology, trace_id))
    browser.wait_for(
        "document.body.innerText.includes('photo job')"
        " && document.body.innerText.includes('relay publish')",
        within=20,
        what="the trace's spans on the UI's trace page",
    )
    assert trace_id in browser.evaluate("document.body.innerText")
    REPORTS.mkdir(exist_ok=True)
    browser.screenshot(REPORTS / "traces-ui.png")


def test_a_clients_traceparent_is_continued(client: httpx.Client, store: str) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    reply = client.get("/api/products/7", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert reply.status_code == 200
    assert reply.headers["X-Trace-Id"] == trace_id
    spans = eventually(
        lambda: spans_of(store, trace_id), within=10, what=f"trace {trace_id} in the store"
    )
    web = one(spans, "get /api/products/{product_id}")
    assert web["parentId"] == parent_id


@pytest.mark.parametrize(
    "traceparent",
    ["garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-" + "a" * 49],
)
def test_a_malformed_traceparent_starts_a_new_trace(client: httpx.Client, traceparent: str) -> None:
    reply = client.get("/api/products/7", headers={"traceparent": traceparent})
    assert reply.status_code == 200
    assert TRACE_ID.match(reply.headers["X-Trace-Id"])
    assert reply.headers["X-Trace-Id"] not in traceparent


def test_an_error_body_names_the_trace_of_its_request(client: httpx.Client) -> None:
    reply = client.get("/api/reviews/1")
    assert reply.status_code == 404
    assert reply.json()["error"]["trace_id"] == reply.headers["X-Trace-Id"]


def test_the_trace_store_down_costs_a_post_nothing(
    client: httpx.Client, token_for: Callable[[int], str], authored: Authored, nodes: Nodes
) -> None:
    token = token_for(KIM)
    nodes.stop(STORE)
    try:
        took = []
        for _ in range(4):
            started = time.monotonic()
            posted = post_review(
                client, token, product_id=7, body=marker("Untraced"), photo=unique_photo()
            )
            took.append(time.monotonic() - started)
            review = authored.add(posted, KIM)
            assert TRACE_ID.match(posted.headers["X-Trace-Id"])
            wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY], within=30)
        # No request waited for the store: a POST here takes tens of milliseconds.
        assert max(took) < 2.0, took
    finally:
        nodes.start(STORE)
