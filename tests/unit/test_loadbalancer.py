"""The vIP's nginx config per layer x algorithm, its JSON errors, and `reviewlab lb stats`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from reviewlab_common.topology import Topology, current
from reviewlab_lab import edgestats, files, lbstats, loadbalancer
from reviewlab_lab.paths import LabPaths

MODES = [
    loadbalancer.LbMode(layer, algorithm)
    for layer in loadbalancer.LAYERS
    for algorithm in loadbalancer.ALGORITHMS
]


@pytest.fixture(scope="module")
def topology() -> Topology:
    return current()


def render(topology: Topology, root: Path, mode: loadbalancer.LbMode) -> str:
    member = topology.load_balancers()[0]
    return loadbalancer.render_config(topology, LabPaths(root), files.templates(), member, mode)


def block(config: str, opening: str) -> str:
    """The text of the block that starts with OPENING, up to its matching brace."""
    start = config.index(opening)
    depth = 0
    for index in range(config.index("{", start), len(config)):
        depth += {"{": 1, "}": -1}.get(config[index], 0)
        if depth == 0:
            return config[start : index + 1]
    raise AssertionError(f"unbalanced block {opening!r}")


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_every_mode_balances_with_its_algorithm(
    topology: Topology, tmp_path: Path, mode: loadbalancer.LbMode
) -> None:
    config = render(topology, tmp_path, mode)
    directive = loadbalancer.ALGORITHMS[mode.algorithm]
    groups = (
        ["upstream web_tcp"] if mode.layer == "l4" else ["upstream web_api", "upstream web_upload"]
    )
    for group in groups:
        text = block(config, group)
        if directive:
            assert directive in text
        else:  # round-robin is nginx's default: no other method may be named
            assert not re.search(r"\b(random|least_conn|hash)\b", text)
    lb = topology.load_balancers()[0]
    # Every address of the member: its own and, while it holds it, the vIP's.
    assert f"listen {lb.ceiling_port};" in block(config, "http {")
    listen = f"listen {lb.port};"
    assert (listen in block(config, "stream {")) == (mode.layer == "l4")
    assert (listen in block(config, "http {")) == (mode.layer == "l7")


def test_paths_stay_under_the_lab_data_dir(topology: Topology, tmp_path: Path) -> None:
    for mode in MODES:
        config = render(topology, tmp_path, mode)
        files = re.findall(r"(?:pid|_temp_path|access_log|error_log)\s+(/[^;\s]+)", config)
        assert len(files) >= 7, files
        for path in files:
            assert path.startswith(str(tmp_path)), f"{mode}: {path}"


def test_l7_pools_follow_the_roles(topology: Topology, tmp_path: Path) -> None:
    config = render(topology, tmp_path, loadbalancer.LbMode())
    for group, role in (("web_api", "api"), ("web_upload", "upload")):
        text = block(config, f"upstream {group}")
        for web in topology.of_kind("web"):
            assert (f"server {web.endpoint} " in text) == (role in web.roles), (group, web)
    assert f"server {topology.nodes[topology.services['cdn']].endpoint};" in block(
        config, "upstream edge"
    )
    assert "location /media/" in config
    assert "add_header X-Upstream" in config


@pytest.mark.parametrize("layer", loadbalancer.LAYERS)
def test_a_drained_server_leaves_every_pool(topology: Topology, tmp_path: Path, layer: str) -> None:
    web_3 = topology.nodes["web-3"]
    config = render(topology, tmp_path, loadbalancer.LbMode(layer, drained=("web-3",)))
    groups = ["upstream web_tcp"] if layer == "l4" else ["upstream web_api", "upstream web_upload"]
    for group in groups:
        assert f"server {web_3.endpoint} " not in block(config, group)
    assert f"server {topology.nodes['web-1'].endpoint} " in block(config, groups[0])


def test_a_drain_must_name_web_servers_and_keep_every_pool(topology: Topology) -> None:
    with pytest.raises(loadbalancer.BadDrain, match="no web server lb: drain one of web-1"):
        loadbalancer.check_drain(topology, ("lb",))
    uploads = tuple(w.name for w in topology.of_kind("web") if "upload" in w.roles)
    with pytest.raises(loadbalancer.BadDrain, match="keep one of web-1, web-2 in rotation"):
        loadbalancer.check_drain(topology, uploads)
    loadbalancer.check_drain(topology, uploads[:1])


def test_the_mode_file_keeps_the_drained_servers() -> None:
    mode = loadbalancer.LbMode("l4", "least_conn", drained=("web-2", "web-3"))
    assert loadbalancer.parse_mode(loadbalancer.mode_text(mode)) == mode
    old = '{"layer": "l7", "algorithm": "random"}'  # written before draining existed
    assert loadbalancer.parse_mode(old) == loadbalancer.LbMode("l7", "random")
    assert str(mode) == "layer l4, algorithm least_conn, drained web-2, web-3"


def test_only_keyed_writes_may_be_sent_twice(topology: Topology, tmp_path: Path) -> None:
    config = render(topology, tmp_path, loadbalancer.LbMode())
    server = block(config, f"listen {topology.vip.port}")
    assert server.count("non_idempotent") == 1
    keyed = block(config, "location /.keyed/")
    assert "internal;" in keyed and "non_idempotent" in keyed
    assert "proxy_next_upstream error timeout;" in config  # everything else: nginx's rule


def test_json_errors_are_valid_json_in_the_config(topology: Topology, tmp_path: Path) -> None:
    config = render(topology, tmp_path, loadbalancer.LbMode())
    bodies = re.findall(r"return (\d{3}) '(.*)';", config)
    statuses = {int(status) for status, _ in bodies}
    assert {200, 413, 429, 502, 503, 504} <= statuses
    for status, body in bodies:
        if status != "200":
            error = json.loads(body)["error"]
            assert error["code"] and len(error["message"]) > 20
            # The request's trace id is the one variable nginx fills in; no other "$".
            assert error["trace_id"] == "$lb_trace_id"
            assert "$" not in body.replace('"$lb_trace_id"', "")


@pytest.mark.parametrize("layer", loadbalancer.LAYERS)
def test_nginx_accepts_the_config(topology: Topology, tmp_path: Path, layer: str) -> None:
    assert shutil.which("nginx"), "nginx is not installed: run `make setup`"
    mode = loadbalancer.LbMode(layer, "least_conn")
    conf = tmp_path / "lb.nginx.conf"
    conf.write_text(render(topology, tmp_path, mode))
    for folder in ("logs", "run/lb-1", "data/lb-1", "conf"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "conf" / loadbalancer.TRACE_JS).write_text(
        loadbalancer.trace_script(files.templates())
    )
    # `nginx -t` parses and opens files but binds no socket: no network needed.
    result = subprocess.run(
        ["nginx", "-t", "-q", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


LINES = [
    "1000.100\tl7\t127.0.0.1\t127.0.0.11:8000\t200\t0.004\tGET /healthz",
    "1000.200\tl7\t127.0.0.1\t127.0.0.12:8000, 127.0.0.13:8000\t200\t0.020\tGET /api/products/3",
    "1000.300\tl7\t127.0.0.77\t-\t429\t0.000\tGET /healthz",
    "1000.400\tl4\t127.0.0.1\t127.0.0.11:8000\t200\t1.500\t-",
    "1000.500\tl7\t127.0.0.1\t127.0.0.13:8000 : 127.0.0.12:8000\t502\t0.010\tPOST /api/reviews",
    "not a log line",
]


def test_stats_parse_the_log_format() -> None:
    entries = [lbstats.parse(line) for line in LINES]
    assert entries[-1] is None
    retried = entries[1]
    assert retried is not None and retried.upstream == "127.0.0.13:8000"
    assert retried.attempts == 2
    answered = entries[2]
    assert answered is not None and answered.upstream == lbstats.ANSWERED_BY_LB
    redirected = entries[4]
    assert redirected is not None and redirected.upstream == "127.0.0.12:8000"


def test_stats_and_edge_parse_lines_led_by_their_iso_time() -> None:
    # nginx writes $time_iso8601 first for the reader; the parsers take $msec after it.
    timed = lbstats.parse(
        "2026-12-02T06:10:29+00:00\t1000.200\tl7\t127.0.0.1\t127.0.0.12:8000, 127.0.0.13:8000"
        "\t200\t0.020\tGET /api/products/3"
    )
    assert timed == lbstats.parse(LINES[1])
    edge = edgestats.parse(
        "2026-12-02T06:10:29+00:00\t1000.200\t127.0.0.1\t200\tMISS\t127.0.0.40:9000\t52000"
        "\t0.004\tGET /media/cutouts/ab.webp"
    )
    assert edge == edgestats.EdgeEntry(
        1000.2, "127.0.0.1", 200, "MISS", 1, "/media/cutouts/ab.webp"
    )
    assert lbstats.parse("2026-12-02T06:10:29+00:00\tnot a log line") is None


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_every_log_format_leads_with_an_iso_time(
    topology: Topology, tmp_path: Path, mode: loadbalancer.LbMode
) -> None:
    formats = re.findall(r'log_format (\w+) "([^"]*)"', render(topology, tmp_path, mode))
    assert len(formats) >= 2, formats
    for name, layout in formats:
        assert layout.startswith("$time_iso8601\\t$msec\\t"), name


def test_stats_share_per_backend_and_window(topology: Topology, tmp_path: Path) -> None:
    log = tmp_path / "lb.access.log"
    log.write_text("\n".join(LINES) + "\n")
    recent = lbstats.read(log, since=0.25, now=1000.5)
    assert [e.at for e in recent] == [1000.3, 1000.4, 1000.5]
    rows = {r.name: r for r in lbstats.shares(topology, lbstats.read(log))}
    assert rows["web-1"].count == 2 and rows["web-1"].share == pytest.approx(0.4)
    assert rows["web-2"].errors == 1
    assert rows["lb"].count == 1
    assert sum(r.count for r in rows.values()) == 5
    text = lbstats.histogram(list(rows.values()), width=10)
    assert "web-1" in text and "####" in text and "40.0%" in text


def test_stats_report_says_when_the_log_is_empty(topology: Topology, tmp_path: Path) -> None:
    text = lbstats.report(topology, tmp_path / "missing.log", "layer l7", since=60)
    assert "nothing" in text and "send some requests" in text


def test_unknown_methods_are_501_and_trace_405_at_l7(topology: Topology, tmp_path: Path) -> None:
    config = render(topology, tmp_path, loadbalancer.LbMode())
    passed = block(config, "map $request_method $lb_method_passed")
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY"):
        assert f" {method} 1;" in passed
    assert "TRACE" not in passed and "CONNECT" not in passed
    server = block(config, f"server {{\n        listen {topology.vip.port};")
    assert "if ($lb_method_passed = 0)" in server
    # nginx rejects TRACE and CONNECT itself, with a bare 405: a web server gives the answer.
    assert "error_page 405 = @not_allowed;" in server
    assert "proxy_pass http://web_api;" in block(config, "location @not_allowed")
    error = json.loads(
        re.findall(r"return 501 '(.*)';", block(config, "location @not_implemented"))[0]
    )
    assert error["error"]["code"] == "method_not_implemented"


@pytest.mark.parametrize("layer", loadbalancer.LAYERS)
def test_the_web_servers_see_the_vip_address_as_the_client(
    topology: Topology, tmp_path: Path, layer: str
) -> None:
    """How /metrics and /readyz tell a request through the vIP from one on a node's address."""
    config = render(topology, tmp_path, loadbalancer.LbMode(layer, "round_robin"))
    lb = topology.load_balancers()[0]
    server = block(config, f"server {{\n        listen {lb.port};")
    # The member's own address, never the vIP's: the vIP moves, the member's address does not.
    assert f"proxy_bind {lb.address};" in server
    assert topology.vip.address not in server


def test_the_micro_cache_bypass_names_the_api_consistency_token() -> None:
    from reviewlab_web import consistency

    assert loadbalancer.MICRO_CACHE.consistency_header == consistency.HEADER
    assert loadbalancer.MICRO_CACHE.consistency_cookie == consistency.COOKIE


def test_a_scrapers_limits_are_in_the_l7_config(topology: Topology, tmp_path: Path) -> None:
    config = render(topology, tmp_path, loadbalancer.LbMode())
    server = block(config, f"server {{\n        listen {topology.vip.port};")
    # A header line past nginx's buffers is a JSON 431, not nginx's HTML 400.
    assert "error_page 494 = @header_too_large;" in server
    error = json.loads(
        re.findall(r"return 431 '(.*)';", block(config, "location @header_too_large"))[0]
    )
    assert error["error"]["code"] == "header_too_large"
    assert "client_header_timeout 10s;" in server and "client_body_timeout 10s;" in server
    # 1,000 clients in flight hold 2,000 connections at layer 7.
    connections = int(re.findall(r"worker_connections (\d+);", config)[0])
    files = int(re.findall(r"worker_rlimit_nofile (\d+);", config)[0])
    assert connections >= 2 * 1000 + 100 and files >= 2 * connections
