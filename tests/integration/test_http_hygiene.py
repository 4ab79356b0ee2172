"""HTTP at the vIP as RFC 9110 asks, and what a public client may see through it."""

from __future__ import annotations

import httpx
import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import loadbalancer

from tests.integration.nodes import Nodes

# A source outside the lab's internal network: a shopper, as the public DNS view sees one.
PUBLIC_SOURCE = "127.0.1.5"


def public_client(vip: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=PUBLIC_SOURCE)
    return httpx.Client(base_url=vip, transport=transport, timeout=15)


def assert_error(reply: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error: dict[str, str] = reply.json()["error"]
    assert error["code"] == code, error
    return error


@pytest.mark.parametrize("layer", loadbalancer.LAYERS)
@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_trace_and_connect_are_405_with_allow_through_the_vip(
    vip: str, nodes: Nodes, layer: str, method: str
) -> None:
    """Methods HTTP defines: 405 and the resource's Allow list at either layer, never a 501
    (nginx refuses both itself at layer 7; a web server's answer is passed on)."""
    with nodes.vip_in_layer(layer), public_client(vip) as http:
        replies = [http.request(method, path) for path in ("/api/reviews", "/api/products/7")]
    for reply, allow in zip(replies, ("GET, HEAD, POST", "GET, HEAD"), strict=True):
        error = assert_error(reply, 405, "http_405")
        assert reply.headers["Allow"] == allow, reply.headers
        assert reply.headers["X-Served-By"].startswith("web-")
        assert method in error["message"]


@pytest.mark.parametrize("method", ["BREW", "PROPFIND"])
def test_a_method_nothing_implements_is_501_from_the_vip(vip: str, method: str) -> None:
    with public_client(vip) as http:
        reply = http.request(method, "/api/reviews")
    error = assert_error(reply, 501, "method_not_implemented")
    assert reply.headers["X-Upstream"] == "lb"  # no web server was bothered
    assert "GET" in error["message"]


@pytest.mark.parametrize("method", ["PUT", "OPTIONS", "PATCH"])
def test_a_known_method_the_api_implements_nowhere_is_405_from_the_web_server(
    vip: str, method: str
) -> None:
    with public_client(vip) as http:
        reply = http.request(method, "/api/reviews")
    error = assert_error(reply, 405, "http_405")
    assert reply.headers["X-Served-By"].startswith("web-")
    assert reply.headers["Allow"] == "GET, HEAD, POST"
    assert method in error["message"]


def test_a_method_no_one_knows_is_501_from_the_web_server(topology: Topology) -> None:
    """Behind the vIP at layer 7 nginx answers it; a web server answers the same way."""
    web = topology.of_kind("web")[0]
    for method, path in (("TRACE", "/api/reviews"), ("PROPPATCH", "/api/products/7")):
        reply = httpx.request(method, f"{web.url}{path}", timeout=5)
        if method == "TRACE":  # known to HTTP: not allowed here
            assert_error(reply, 405, "http_405")
            assert reply.headers["Allow"] == "GET, HEAD, POST"
        else:
            error = assert_error(reply, 501, "method_not_implemented")
            assert "DELETE, GET, HEAD, POST" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/reviews", "GET, HEAD, POST"),
        ("POST", "/api/products/7", "GET, HEAD"),
        ("POST", "/api/reviews/1", "DELETE, GET, HEAD"),
        ("DELETE", "/docs/assets/swagger-ui.css", "GET, HEAD"),
    ],
)
def test_a_method_the_resource_does_not_allow_is_405_with_every_allowed_method(
    vip: str, method: str, path: str, allow: str
) -> None:
    with public_client(vip) as http:
        reply = http.request(method, path)
    error = assert_error(reply, 405, "http_405")
    assert reply.headers["Allow"] == allow
    assert method in error["message"] and path in error["message"]


def test_head_answers_like_get_without_content(vip: str) -> None:
    with public_client(vip) as http:
        got = http.get("/api/products/7")
        head = http.head("/api/products/7")
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["content-type"] == got.headers["content-type"]


def test_metrics_are_prometheus_text_on_the_web_servers_own_address(topology: Topology) -> None:
    for web in topology.of_kind("web"):
        reply = httpx.get(f"{web.url}/metrics", timeout=5)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/plain")
        assert "# TYPE web_requests_total counter" in reply.text


def test_the_openapi_document_says_metrics_are_text_not_json(vip: str) -> None:
    document = httpx.get(f"{vip}/openapi.json", timeout=5).json()
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    for path in ("/metrics", "/readyz"):
        assert "403" in document["paths"][path]["get"]["responses"]


@pytest.mark.parametrize("layer", ["l7", "l4"])
def test_the_public_sees_the_api_and_docs_but_no_node_internals(
    nodes: Nodes, vip: str, layer: str
) -> None:
    with nodes.vip_in_layer(layer), public_client(vip) as http:
        for path in ("/metrics", "/readyz"):
            error = assert_error(http.get(path), 403, "node_only")
            assert "own address" in error["message"]
        assert http.get("/healthz").json()["status"] == "alive"
        assert http.get("/api/products/7").status_code == 200
        assert http.get("/docs").status_code == 200
        assert http.get("/openapi.json").status_code == 200
