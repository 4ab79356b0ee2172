"""The load balancer's mode (layer and algorithm) and its nginx config: rendering only.

Applying a mode to the running vIP is the runtime's job (`Runtime.apply_lb_mode`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import jinja2
from reviewlab_common import consistency, images
from reviewlab_common.topology import Node, Topology

from reviewlab_lab.paths import LabPaths
from reviewlab_lab.vrrp import pair as vrrp_pair

LAYERS = ("l4", "l7")
# The same directives exist in nginx's http and stream upstreams.
ALGORITHMS = {
    "round_robin": "",  # nginx's default: weighted round-robin
    "random": "random;",
    "random_two": "random two least_conn;",  # two random picks, the less loaded one wins
    "least_conn": "least_conn;",
}
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
# njs (Debian's libnginx-mod-http-js) and the script it runs, rendered beside the config.
JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
TRACE_JS = "lb-traceparent.js"
NGINX = "/usr/sbin/nginx"


def config_path(paths: LabPaths, member: Node) -> Path:
    """Load balancer MEMBER's nginx config (each member has its own pid, logs and temp files)."""
    return paths.conf / f"{member.name}.nginx.conf"


@dataclass(frozen=True)
class LbMode:
    layer: str = "l7"
    algorithm: str = "round_robin"
    # Web servers taken out of rotation (drained): the vIP sends them nothing new.
    drained: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"layer {self.layer}, algorithm {self.algorithm}"
        return f"{text}, drained {', '.join(self.drained)}" if self.drained else text


class BadDrain(ValueError):
    """A drain the vIP cannot serve with: an unknown server, or a pool left empty."""


def in_rotation(topology: Topology, mode: LbMode) -> list[Node]:
    """The web servers the vIP sends requests to in MODE."""
    return [w for w in topology.of_kind("web") if w.name not in mode.drained]


def check_drain(topology: Topology, drained: tuple[str, ...]) -> None:
    """Raise BadDrain unless every name is a web server and every pool keeps one member."""
    webs = [w.name for w in topology.of_kind("web")]
    unknown = [name for name in drained if name not in webs]
    if unknown:
        raise BadDrain(f"no web server {', '.join(unknown)}: drain one of {', '.join(webs)}")
    for pool, members in pools(topology, LbMode(drained=drained)).items():
        if not members:
            role = pool.removeprefix("web_")
            keep = ", ".join(w.name for w in topology.of_kind("web") if role in w.roles)
            raise BadDrain(f"keep one of {keep} in rotation: they alone serve the {role} role")


@dataclass(frozen=True)
class Limits:
    """What the vIP enforces; rendered into the config and quoted in its JSON errors."""

    # nginx's "m" is a MiB. Photos are at most 10 MiB; the form's other fields need a little more.
    max_body_mb: int = 11
    rate_per_second: int = 50
    burst: int = 100
    # Exempt from the rate limit; empty means the machine itself (see render_config).
    unlimited_sources: tuple[str, ...] = ()
    connect_timeout_s: int = 1
    read_timeout_s: int = 10
    idle_timeout_s: int = 60
    max_fails: int = 2
    fail_timeout_s: int = 5
    tries: int = 3


LIMITS = Limits()


@dataclass(frozen=True)
class MicroCache:
    """The vIP's short cache of anonymous product review listings (see lb-l7.j2)."""

    ttl_s: int = 1
    # A reader carrying either bypasses the cache: read-your-writes.
    consistency_header: str = consistency.HEADER
    consistency_cookie: str = consistency.COOKIE


MICRO_CACHE = MicroCache()


def mode_file(paths: LabPaths) -> str:
    return str(paths.conf / "lb-mode.json")


def parse_mode(text: str | None) -> LbMode:
    """The mode saved in the mode file's TEXT; the default mode when there is none."""
    if not text:
        return LbMode()
    fields = json.loads(text)
    return LbMode(**(fields | {"drained": tuple(fields.get("drained", ()))}))


def mode_text(mode: LbMode) -> str:
    """The mode file's contents for MODE (what parse_mode reads back)."""
    return json.dumps(asdict(mode))


def current_mode(paths: LabPaths) -> LbMode:
    try:
        with open(mode_file(paths)) as handle:
            return parse_mode(handle.read())
    except FileNotFoundError:
        return LbMode()


def error_log(paths: LabPaths, member: Node) -> Path:
    """MEMBER's nginx notices (reloads, workers started and stopped, config errors)."""
    return paths.logs / f"{member.name}.error.log"


def access_log(paths: LabPaths) -> Path:
    """The vIP's own log: one line per request (l7) or per connection (l4), whichever member
    answered (natively both append to one file; in containers each keeps its own)."""
    return paths.logs / "lb.access.log"


def pools(topology: Topology, mode: LbMode | None = None) -> dict[str, list[Node]]:
    """The L7 upstream groups by role: every web server in rotation that holds the role."""
    webs = in_rotation(topology, mode or LbMode())
    return {
        "web_api": [w for w in webs if "api" in w.roles],
        "web_upload": [w for w in webs if "upload" in w.roles],
    }


# The bench's peer (tests/bench/bare_app.py): a bare FastAPI app that `make bench` runs beside
# each web server, on its address and the next port. The vIP's ceiling server proxies it under
# PEER_PATH as the vIP proxies the web servers; without the bench it answers 502.
PEER_PATH = "/peer/"


def bench_peers(topology: Topology) -> list[tuple[str, int]]:
    """Where the bench's bare FastAPI peers listen: one per web server, (address, port)."""
    return [(web.address, web.port + 1) for web in topology.of_kind("web")]


def error_pages(limits: Limits) -> list[tuple[str, int, str, str]]:
    """The JSON errors the vIP answers by itself: (location, status, code, message)."""
    retry = "A GET is safe to retry; retry a POST only with the same Idempotency-Key."
    return [
        (
            "too_large",
            413,
            "request_too_large",
            f"the request body is larger than {limits.max_body_mb} MiB, so nothing was stored. "
            f"A photo may be at most {images.MAX_PHOTO_BYTES // 2**20} MiB: send a smaller one.",
        ),
        (
            "header_too_large",
            431,
            "header_too_large",
            "a request header line is longer than the 8 KiB the vIP buffers, so nothing was "
            "processed. Send shorter headers: an Idempotency-Key is at most 200 characters.",
        ),
        (
            "too_many",
            429,
            "rate_limited",
            f"more than {limits.rate_per_second} requests per second came from your address, "
            "so this one was not processed. Wait a second, then retry.",
        ),
        (
            "not_implemented",
            501,
            "method_not_implemented",
            "the shop implements this request method on no resource. "
            "Read with GET or HEAD, write with POST or DELETE; /docs lists every operation.",
        ),
        ("bad_gateway", 502, "upstream_failed", f"no web server answered this request. {retry}"),
        ("unavailable", 503, "upstream_unavailable", f"no web server is available. {retry}"),
        (
            "timed_out",
            504,
            "upstream_timeout",
            f"the web server did not answer within {limits.read_timeout_s} s. {retry}",
        ),
    ]


def trace_script(jinja: jinja2.Environment) -> str:
    """loadbalancer/traceparent.js, which the config loads from the conf folder (TRACE_JS)."""
    assert jinja.loader is not None
    return jinja.loader.get_source(jinja, "traceparent.js")[0]


def render_config(
    topology: Topology,
    paths: LabPaths,
    jinja: jinja2.Environment,
    member: Node,
    mode: LbMode | None = None,
    limits: Limits = LIMITS,
) -> str:
    """MEMBER's nginx config in MODE (else the saved mode). Every member serves the same."""
    node = member
    mode = mode or current_mode(paths)
    if mode.layer not in LAYERS or mode.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown load balancer mode: {mode}")
    check_drain(topology, mode.drained)
    if not limits.unlimited_sources:
        # The machine's own load generators (wrk, locust) are exempt, as a shop exempts its own.
        # Natively the machine reaches a member from its own address on the vIP's bridge.
        runtime = topology.lab.runtime
        sources = [runtime.machine_address]
        if runtime.name == "native":
            sources.append(vrrp_pair.native_segment(topology).gateway)
        limits = replace(limits, unlimited_sources=tuple(sources))
    return jinja.get_template("lb.conf.j2").render(
        node=node,
        vip=topology.vip,
        mode=mode,
        limits=limits,
        node_run=paths.node_run(node.name),
        data_dir=paths.data(node.name),
        access_log=access_log(paths),
        error_log=error_log(paths, node),
        stream_module=STREAM_MODULE,
        js_module=JS_MODULE,
        trace_js=paths.conf / TRACE_JS,
        algorithm_directive=ALGORITHMS[mode.algorithm],
        webs=in_rotation(topology, mode),
        pools=pools(topology, mode),
        edges=topology.of_kind("edge"),
        error_pages=error_pages(limits),
        micro_cache=MICRO_CACHE,
        peers=bench_peers(topology),
        peer_path=PEER_PATH,
        peer_log=paths.logs / "lb.peer.log",
        lab_network=topology.lab.internal_network,
    )
