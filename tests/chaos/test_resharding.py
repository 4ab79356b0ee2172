"""Moving buckets between shards under the chaos runner's steady load, interrupted, aborted.

Each test moves a few buckets the load writes to onto reviews-2 and moves them back, so the
lab ends with the shard map it started with (reviews-2 empty again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from reviewlab_common import consistency, fence, shards, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology
from reviewlab_lab.chaos import report
from reviewlab_lab.chaos.load import Load
from reviewlab_lab.chaos.run import remove_writes
from reviewlab_lab.dbmigrate import superuser_connection
from reviewlab_lab.resharding import fencing, mover, record, runner

from tests.integration.conftest import eventually

TARGET = "reviews-2"
# Products the load writes and reads; their buckets are the ones moved.
MOVED_PRODUCTS = (1, 2, 3)


def buckets_of(topology: Topology, products: tuple[int, ...]) -> list[int]:
    return sorted({shards.bucket_of(p, topology.lab.buckets) for p in products})


@pytest.fixture()
def placement(topology: Topology) -> Iterator[dict[int, str]]:
    """The map before the test; every bucket is put back where it was afterwards."""
    assert record.current(record.root(topology)) is None, "a move is in progress already"
    before = runner.placement(topology)
    yield before
    if record.current(record.root(topology)) is not None:
        runner.abort(topology)
    runner.restore(topology, before)
    assert runner.placement(topology) == before


class ReadYourWrites:
    """A writer that reads each review back at once, with its token, through the vIP."""

    def __init__(self, topology: Topology, product_id: int) -> None:
        secret = lab_secrets.load(topology).token_secret
        self.headers = {"Authorization": f"Bearer {tokens.issue(secret, 5, ttl_s=600)}"}
        self.vip = topology.nodes[topology.services["www"]].host_url
        self.product_id = product_id
        self.checked = 0
        self.misses: list[str] = []
        self.ids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ReadYourWrites:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.vip, timeout=10) as http:
            while not self._stop.wait(0.05):
                form = {"product_id": str(self.product_id), "rating": "3", "body": "ryw check"}
                posted = http.post("/api/reviews", data=form, headers=self.headers)
                if posted.status_code != 201:
                    continue  # a write refused during a freeze: the load counts those
                review_id = posted.json()["id"]
                self.ids.append(int(review_id))
                token = {consistency.HEADER: posted.headers[consistency.HEADER]}
                read = http.get(f"/api/reviews/{review_id}", headers=token)
                self.checked += 1
                if read.status_code != 200:
                    self.misses.append(f"{review_id}: {read.status_code}")

    def delete(self) -> None:
        with httpx.Client(base_url=self.vip, timeout=10) as http:
            for review_id in self.ids:
                http.delete(f"/api/reviews/{review_id}", headers=self.headers)


def under_load(topology: Topology, work: Any) -> tuple[Any, dict[str, Any], Load]:
    """WORK() while the chaos runner's steady load runs; what WORK returned, the read-back."""
    load = Load(topology, writers=4, readers=4)
    load.start()
    try:
        time.sleep(2)
        result = work()
        time.sleep(2)
    finally:
        load.stop()
    try:
        verdict = report.read_back(topology, load)
    finally:
        remove_writes(topology, load)
    return result, verdict, load


def failed(load: Load, kind: str) -> list[str]:
    return [f"{o.status} {o.error[:80]}" for o in load.outcomes if o.kind == kind and not o.ok]


def test_a_move_and_its_way_back_under_load_lose_and_fail_nothing(
    topology: Topology, placement: dict[int, str]
) -> None:
    buckets = buckets_of(topology, MOVED_PRODUCTS)

    def there_and_back() -> list[dict[str, Any]]:
        return [runner.start(topology, buckets, TARGET), *runner.restore(topology, placement)]

    with ReadYourWrites(topology, MOVED_PRODUCTS[0]) as ryw:
        moves, verdict, load = under_load(topology, there_and_back)
    ryw.delete()
    assert [m["outcome"] for m in moves] == ["done"] * len(moves)
    assert verdict["acknowledged"] > 50
    assert verdict["lost"] == 0, verdict["lost_ids"]
    assert verdict["duplicates"] == 0, verdict["duplicate_examples"]
    assert verdict["on_two_shards"] == 0
    assert failed(load, "read") == []
    # A write that met a freeze waited for it; none outlasted the wait (a 503 would say so).
    assert failed(load, "write") == []
    assert ryw.checked > 10 and ryw.misses == []
    for move in moves:
        freezes = move["freezes_s"]
        assert len(freezes) == len(move["steps"]) and all(f > 0 for f in freezes)
        assert max(freezes) < fence.FREEZE_LIMIT_S  # the mover gives up a longer cutover
        assert all(s["phase"] == "done" and s["verified"] for s in move["steps"])
        assert move["rows_copied"] > 0 and move["requests_served"] > 0
    assert runner.placement(topology) == placement
    # The console's feed told each move's start and end as it happened.
    told = [e["text"] for e in console_history(topology) if e["kind"] == "shard"]
    for move in moves:
        assert [t for t in told if move["move"] in t][-2:] == [
            f"shard move {move['move']}: {sum(len(s['buckets']) for s in move['steps'])} "
            f"buckets to {move['target']}",
            f"shard move {move['move']} done: {move['rows_copied']} rows copied, longest write "
            f"freeze {1000 * move['freeze_max_s']:.0f} ms",
        ]


def console_history(topology: Topology) -> list[dict[str, Any]]:
    """The events the console keeps: the first message of its event stream."""
    console = topology.of_kind("console")[0]
    with httpx.stream("GET", f"{console.host_url}/api/events", timeout=10) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                history: list[dict[str, Any]] = json.loads(line.removeprefix("data: "))
                return history
    raise AssertionError("the console's event stream ended before its history")


def start_held(topology: Topology, buckets: list[int]) -> subprocess.Popen[str]:
    """`reviewlab shard move` in its own process, held once its copy is done."""
    env = {**os.environ, mover.HOLD_ENV: record.COPIED}
    spec = ",".join(map(str, buckets))
    return subprocess.Popen(
        ["reviewlab", "shard", "move", spec, "--to", TARGET, "--no-live"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(moving: subprocess.Popen[str]) -> str:
    """SIGKILL the runner (a runner killed, not stopped); what it printed."""
    moving.send_signal(signal.SIGKILL)
    out, _ = moving.communicate(timeout=10)
    return out


def held_at_copied(topology: Topology) -> record.MoveRecord:
    def phase() -> record.MoveRecord | None:
        found = record.current(record.root(topology))
        return found[0] if found and found[0].steps[0].phase == record.COPIED else None

    return eventually(phase, within=30, what="the move held after its copy")


def rows_on(topology: Topology, shard: str, buckets: list[int]) -> int:
    with superuser_connection(topology, topology.clusters[shard], "reviews") as conn:
        return sum(d[0] for d in fencing.digests(conn, buckets).values())


def fences_on(topology: Topology, shard: str, buckets: list[int]) -> set[str]:
    with superuser_connection(topology, topology.clusters[shard], "reviews") as conn:
        return set(fencing.fence_states(conn, buckets).values())


def test_a_killed_move_leaves_the_map_on_its_source_and_resumes(
    topology: Topology, placement: dict[int, str]
) -> None:
    buckets = buckets_of(topology, MOVED_PRODUCTS[:1])
    source = placement[buckets[0]]
    moving = start_held(topology, buckets)
    try:
        held = held_at_copied(topology)
        assert rows_on(topology, TARGET, buckets) == held.steps[0].rows_copied
    finally:
        stop(moving)
    # Killed mid-move: the map still points at the source, which takes writes (captured).
    assert runner.placement(topology) == placement
    assert fences_on(topology, source, buckets) == {"capture"}
    assert fences_on(topology, TARGET, buckets) == {"closed"}
    result, verdict, load = under_load(topology, lambda: runner.resume(topology))
    assert result["outcome"] == "done"
    assert verdict["lost"] == 0 and verdict["duplicates"] == 0
    assert failed(load, "read") == []
    assert {runner.placement(topology)[b] for b in buckets} == {TARGET}
    assert rows_on(topology, source, buckets) == 0  # the old copies went after the flip
    assert fences_on(topology, source, buckets) == {"closed"}
    assert fences_on(topology, TARGET, buckets) == {"open"}


def test_an_aborted_move_leaves_the_old_placement_intact(
    topology: Topology, placement: dict[int, str]
) -> None:
    buckets = buckets_of(topology, MOVED_PRODUCTS[:1])
    source = placement[buckets[0]]
    before = rows_on(topology, source, buckets)
    moving = start_held(topology, buckets)
    try:
        held_at_copied(topology)
    finally:
        stop(moving)
    done = subprocess.run(
        ["reviewlab", "shard", "move", "--abort"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stay on {source}; copies deleted" in done.stdout
    assert record.current(record.root(topology)) is None
    assert runner.placement(topology) == placement
    assert rows_on(topology, TARGET, buckets) == 0
    assert rows_on(topology, source, buckets) == before
    assert fences_on(topology, source, buckets) == {"open"}


def test_a_second_move_is_refused_while_one_is_in_progress(
    topology: Topology, placement: dict[int, str]
) -> None:
    buckets = buckets_of(topology, MOVED_PRODUCTS[:1])
    moving = start_held(topology, buckets)
    try:
        held_at_copied(topology)
        other = buckets_of(topology, MOVED_PRODUCTS[1:2])
        done = subprocess.run(
            ["reviewlab", "shard", "move", str(other[0]), "--to", TARGET],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "a move is already in progress" in done.stderr
        resumed = subprocess.run(
            ["reviewlab", "shard", "move", "--resume"], capture_output=True, text=True, timeout=60
        )
        assert resumed.returncode == 1 and "another move runner is at work" in resumed.stderr
    finally:
        stop(moving)


def test_shard_add_on_a_running_lab_keeps_the_shard_empty_and_refuses_an_unknown_one(
    topology: Topology, placement: dict[int, str]
) -> None:
    done = subprocess.run(
        ["reviewlab", "shard", "add", TARGET], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{TARGET}: 2 nodes running, schema at head, in the DNS" in done.stdout
    assert "in the shard map with 0 buckets" in done.stdout
    assert TARGET in record.registered(record.root(topology), topology)
    assert runner.placement(topology) == placement
    unknown = subprocess.run(
        ["reviewlab", "shard", "add", "reviews-9"], capture_output=True, text=True, timeout=30
    )
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "unknown shard 'reviews-9': declare [clusters.reviews-9]" in unknown.stderr
    status = subprocess.run(["reviewlab", "shard", "status"], capture_output=True, text=True)
    assert f"{TARGET}       0 buckets  -" in status.stdout
