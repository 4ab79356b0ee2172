"""The vIP against the running lab: distribution, routing by role, layer 4, live switches,
a killed web server under load, and the limits nginx enforces by itself.

Every test that changes the mode puts the vIP back to layer l7, round-robin.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import install, loadbalancer
from reviewlab_lab.photos import PORTRAIT

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import shard_primary

LOADTEST_USER = 5
# A client other than the lab machine (which the rate limit exempts): a node's address.
LIMITED_CLIENT = "worker-2"
Switch = Callable[[str, str], None]


@pytest.fixture()
def lb_mode(nodes: Nodes) -> Iterator[Switch]:
    yield nodes.set_lb
    default = loadbalancer.LbMode()
    nodes.set_lb(default.layer, default.algorithm)


def webs_with(topology: Topology, role: str) -> set[str]:
    return {w.name for w in topology.of_kind("web") if role in w.roles}


def upstream_node(topology: Topology, reply: httpx.Response) -> str:
    """The node named by X-Upstream (the last address when nginx moved on)."""
    address = reply.headers["X-Upstream"].split(", ")[-1].rsplit(":", 1)[0]
    node = topology.node_at(address)
    assert node is not None, reply.headers["X-Upstream"]
    return node.name


def assert_json_error(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["X-Upstream"] == "lb"
    assert reply.json()["error"]["code"] == code


class Load:
    """Threads sending GETs through the vIP until stopped; every failure is kept."""

    def __init__(self, vip: str, threads: int = 4, *, fresh_connections: bool = False) -> None:
        self.vip = vip
        # A fresh connection per request never meets an idle keep-alive connection that an
        # old nginx worker closes at shutdown (see docs/loadbalancer.md, "Switching live").
        self.limits = httpx.Limits(max_keepalive_connections=0 if fresh_connections else None)
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.cut = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.vip, timeout=15, limits=self.limits) as http:
            n = index
            while not self.stop.is_set():
                n += 1
                path = f"/api/products/{n % 50 + 1}" if n % 2 else "/healthz"
                failure = self._get(http, path)
                with self.lock:
                    if failure:
                        self.failures.append(failure)
                    else:
                        self.ok += 1

    def _get(self, http: httpx.Client, path: str) -> str | None:
        """One GET, repeated once if its answer was cut off mid-body; the failure or None.

        nginx hands a GET to the next server only until it has passed the answer's header on.
        A web server killed between writing its header and its body cuts that one answer, and
        the client repeats it, as an HTTP client may with an idempotent request.
        """
        for attempt in range(2):
            try:
                reply = http.get(path)
            except httpx.RemoteProtocolError as exc:
                if attempt == 0 and "complete message body" in str(exc):
                    with self.lock:
                        self.cut += 1
                    continue
                return f"{path}: {exc!r}"
            except httpx.HTTPError as exc:
                return f"{path}: {exc!r}"
            return None if reply.status_code == 200 else f"{path}: {reply.status_code}"
        return f"{path}: cut off twice"

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def wait_for(self, more: int) -> None:
        """Until MORE requests have succeeded since now (the load is really running)."""
        target = self.ok + more
        eventually(lambda: self.ok >= target, within=30, every=0.05, what=f"{more} more GETs")


def test_round_robin_spreads_requests_evenly(
    topology: Topology, client: httpx.Client, lb_mode: Switch
) -> None:
    lb_mode("l7", "round_robin")
    served = Counter(client.get("/healthz").headers["X-Served-By"] for _ in range(300))
    webs = webs_with(topology, "api")
    assert set(served) == webs, served
    for name in webs:
        # Exactly a third when the vIP is alone; other traffic may interleave.
        assert abs(served[name] / 300 - 1 / len(webs)) < 0.1, served


@pytest.mark.parametrize("layer", loadbalancer.LAYERS)
def test_a_drained_server_gets_no_new_request_until_it_is_back(
    topology: Topology, vip: str, nodes: Nodes, lb_mode: Switch, layer: str
) -> None:
    nodes.set_lb(layer, "round_robin", drain="web-3")
    mode = reviewlab("lb", "show")
    assert "drained web-3" in mode.stdout, mode.stdout
    # A fresh connection per request: at L4 an open one stays with its server.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=vip, timeout=10, limits=fresh) as http:
        served = Counter(http.get("/healthz").headers["X-Served-By"] for _ in range(60))
        assert set(served) == webs_with(topology, "api") - {"web-3"}, served
        nodes.set_lb(layer, "round_robin")
        back = Counter(http.get("/healthz").headers["X-Served-By"] for _ in range(60))
    assert set(back) == webs_with(topology, "api"), back


def test_a_drain_that_empties_a_pool_is_refused(topology: Topology, lb_mode: Switch) -> None:
    uploads = ",".join(sorted(webs_with(topology, "upload")))
    done = reviewlab("lb", "set", "--drain", uploads, check=False)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "in rotation: they alone serve the upload role" in done.stderr
    assert "drained" not in reviewlab("lb", "show").stdout


def reviewlab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The learner's `reviewlab` command."""
    argv = [str(install.current().bin / "reviewlab"), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def test_l7_routes_uploads_api_and_media_by_role(
    topology: Topology, client: httpx.Client, lb_mode: Switch
) -> None:
    lb_mode("l7", "round_robin")
    photo = PORTRAIT.read_bytes()
    uploads = set()
    for _ in range(6):
        # No token: the web server refuses it (401), but only after the vIP routed it.
        reply = client.post(
            "/api/reviews",
            data={"product_id": "1", "rating": "5", "body": "routing"},
            files={"photo": ("portrait.jpg", photo, "image/jpeg")},
        )
        assert reply.status_code in (401, 422), reply.text
        assert upstream_node(topology, reply) == reply.headers["X-Served-By"]
        uploads.add(reply.headers["X-Served-By"])
    assert uploads <= webs_with(topology, "upload"), uploads

    api = {upstream_node(topology, client.get("/api/products/1")) for _ in range(30)}
    assert api == webs_with(topology, "api"), api

    media = client.get("/media/originals/lb-routing-check.jpg")
    assert media.headers["X-Served-By"] == topology.services["cdn"]
    assert upstream_node(topology, media) == topology.services["cdn"]


def test_l4_serves_the_api_without_reading_it(
    topology: Topology,
    vip: str,
    lb_mode: Switch,
    token_for: Callable[[int], str],
) -> None:
    lb_mode("l4", "round_robin")
    # One connection per request: layer 4 balances connections, not requests.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=vip, timeout=15, limits=fresh) as http:
        served = set()
        for n in range(1, 31):
            reply = http.get(f"/api/products/{n}")
            assert reply.status_code == 200, reply.text
            assert "X-Upstream" not in reply.headers  # nothing read, nothing added
            served.add(reply.headers["X-Served-By"])
        assert served == {w.name for w in topology.of_kind("web")}
        auth = {"Authorization": f"Bearer {token_for(LOADTEST_USER)}"}
        posted = http.post(
            "/api/reviews",
            data={"product_id": "7", "rating": "4", "body": f"layer 4 {uuid.uuid4()}"},
            headers=auth,
        )
        assert posted.status_code == 201, posted.text
        gone = http.delete(f"/api/reviews/{posted.json()['id']}", headers=auth)
        assert gone.status_code == 204, gone.text


def test_switching_layer_and_algorithm_under_load_fails_no_request(
    vip: str, lb_mode: Switch
) -> None:
    modes = [
        ("l7", "least_conn"),
        ("l4", "round_robin"),
        ("l4", "least_conn"),
        ("l7", "random"),
        ("l4", "random_two"),
        ("l7", "round_robin"),
    ]
    with Load(vip, fresh_connections=True) as load:
        load.wait_for(50)
        for layer, algorithm in modes:
            lb_mode(layer, algorithm)
            load.wait_for(100)
    assert load.failures == [], load.failures[:10]
    assert load.cut == 0, "a reload cut an answer off"
    assert load.ok >= 650


def _shard_counts(topology: Topology, bodies: list[str]) -> dict[str, list[int]]:
    """Review ids per body, read from every shard's primary (the API could hide duplicates)."""
    found: dict[str, list[int]] = {body: [] for body in bodies}
    for cluster in topology.shards:
        with shard_primary(topology, cluster.name) as conn:
            rows = conn.execute(
                "SELECT body, id FROM reviews WHERE body = ANY(%s)", (bodies,)
            ).fetchall()
        for body, review_id in rows:
            found[body].append(int(review_id))
    return found


class Writer(threading.Thread):
    """POSTs reviews through the vIP, with and without Idempotency-Key, until stopped."""

    def __init__(self, vip: str, token: str, run: str) -> None:
        super().__init__()
        self.vip = vip
        self.headers = {"Authorization": f"Bearer {token}"}
        self.run_id = run
        self.stop = threading.Event()
        self.keyed: dict[str, list[Any]] = {}  # body -> every answer's status (retries too)
        self.unkeyed: dict[str, int | str] = {}  # body -> the one answer

    def _post(self, http: httpx.Client, body: str, key: str | None) -> int | str:
        headers = self.headers | ({"Idempotency-Key": key} if key else {})
        try:
            reply = http.post(
                "/api/reviews",
                data={"product_id": "11", "rating": "3", "body": body},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return repr(exc)
        return reply.status_code

    def run(self) -> None:
        with httpx.Client(base_url=self.vip, timeout=15) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = f"lb kill {self.run_id} {n}"
                if n % 2:
                    self.unkeyed[body] = self._post(http, body, None)
                    continue
                # A client holding an Idempotency-Key retries until it gets an answer.
                answers = self.keyed.setdefault(body, [])
                for _ in range(5):
                    answers.append(self._post(http, body, f"lb-kill-{self.run_id}-{n}"))
                    if answers[-1] == 201:
                        break


def test_killed_web_server_fails_no_get_and_duplicates_no_post(
    topology: Topology, vip: str, lb_mode: Switch, token_for: Callable[[int], str]
) -> None:
    lb_mode("l7", "round_robin")
    victim = topology.nodes["web-2"]
    writer = Writer(vip, token_for(LOADTEST_USER), uuid.uuid4().hex[:8])
    try:
        with Load(vip) as load:
            writer.start()
            load.wait_for(100)
            kill = [str(install.current().bin / "reviewlab"), "node", "kill", victim.name]
            subprocess.run(kill, check=True, capture_output=True)
            eventually(
                lambda: httpx.get(f"{victim.url}/readyz", timeout=2).status_code == 200,
                within=30,
                what=f"{victim.name} ready again after SIGKILL",
            )
            eventually(
                lambda: httpx.get(f"{vip}/healthz").headers["X-Served-By"] == victim.name,
                within=15,
                every=0.05,
                what=f"{victim.name} back in the vIP's rotation",
            )
            load.wait_for(100)
            writer.stop.set()
            writer.join()
    finally:
        writer.stop.set()
        if writer.is_alive():
            writer.join()
        stored = _shard_counts(topology, [*writer.keyed, *writer.unkeyed])
        auth = {"Authorization": f"Bearer {token_for(LOADTEST_USER)}"}
        for ids in stored.values():
            for review_id in ids:
                httpx.delete(f"{vip}/api/reviews/{review_id}", headers=auth, timeout=15)
    assert load.failures == [], load.failures[:10]
    # Only answers in flight on the victim at the kill can be cut: at most one per thread.
    assert load.cut <= len(load.threads), load.cut
    assert writer.keyed and writer.unkeyed
    for body, answers in writer.keyed.items():
        assert answers[-1] == 201, (body, answers)
        assert len(stored[body]) == 1, (body, answers, stored[body])
    for body, answer in writer.unkeyed.items():
        # Without a key: one review or a clear 502/503 (maybe written before the crash),
        # never two.
        assert answer in (201, 502, 503), (body, answer)
        assert len(stored[body]) <= 1, (body, answer, stored[body])
        if answer == 201:
            assert len(stored[body]) == 1, (body, stored[body])


def test_too_large_body_gets_413_json(
    client: httpx.Client, token_for: Callable[[int], str]
) -> None:
    limit = loadbalancer.LIMITS.max_body_mb * 1024 * 1024
    reply = client.post(
        "/api/reviews",
        content=b"x" * (limit + 1024),
        headers={
            "Authorization": f"Bearer {token_for(LOADTEST_USER)}",
            "Content-Type": "multipart/form-data; boundary=lb",
        },
    )
    assert_json_error(reply, 413, "request_too_large")


def test_request_rate_per_address_gets_429_json(topology: Topology, nodes: Nodes) -> None:
    """From another address than the machine's (which the limit exempts): a lab node's."""
    limits = loadbalancer.LIMITS
    url = f"{topology.nodes[topology.services['www']].url}/healthz"
    replies = nodes.get_from(LIMITED_CLIENT, url, count=4 * limits.burst, workers=8)
    statuses = Counter(r.status for r in replies)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= limits.burst, statuses
    assert statuses[429] > 0, statuses
    limited = next(r for r in replies if r.status == 429)
    error = limited.json()
    assert isinstance(error, dict) and error["error"]["code"] == "rate_limited", error
    assert limited.headers["retry-after"] == "1"
    # This address recovers within a second.
    eventually(
        lambda: nodes.get_from(LIMITED_CLIENT, url)[0].status == 200,
        within=5,
        what="rate refill",
    )
