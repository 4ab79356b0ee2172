"""The guided tour, unattended, against the running lab: every step's claim holds, and the lab
is left as the tour found it (the vIP's mode, MinIO, the shop's rows, replay on replicas)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from reviewlab_common import photos, storage
from reviewlab_common.db import database_of
from reviewlab_common.topology import Topology
from reviewlab_lab import cpucap, dnsrecords, runtimes
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.tour import acid, consistency, multimaster, registry, runner, sharding
from reviewlab_lab.tour.replication import connect

from tests.integration.shop import shard_primary

# Every scratch thing a step makes starts with one of these.
OBJECT_PREFIXES = (f"{photos.PRODUCTS}tour-", f"{photos.CUTOUTS}tour-")
BODY_PREFIXES = (consistency.BODY, sharding.BODY, acid.BODY)


@pytest.fixture(scope="module")
def walked(topology: Topology) -> dict[str, Any]:
    """The whole tour, run once unattended, with the lab's state before and after."""
    runtime = runtimes.of(topology)
    before = runtime.lb_mode()
    shown: list[str] = []
    outcomes = runner.tour(registry.STEPS, topology, runtime, say=shown.append)
    return {
        "outcomes": {o.name: o for o in outcomes},
        "shown": shown,
        "before": before,
        "after": runtime.lb_mode(),
    }


@pytest.mark.parametrize("name", registry.names())
def test_each_steps_claim_holds_on_the_lab(walked: dict[str, Any], name: str) -> None:
    outcome = walked["outcomes"].get(name)
    assert outcome is not None, f"{name} did not run"
    assert outcome.passed, f"{name}: {outcome.verdict}"
    assert outcome.evidence is not None and outcome.evidence.figures, f"{name} measured nothing"
    assert not outcome.unrestored


def test_every_step_printed_its_lesson_and_its_repeat_command(walked: dict[str, Any]) -> None:
    text = "\n".join(walked["shown"])
    for step in registry.STEPS:
        assert f"Repeat it: {step.repeat}" in text
    assert text.count("What you just saw: ") == len(registry.STEPS)


def test_the_vip_is_left_in_the_mode_it_was_found_in(walked: dict[str, Any]) -> None:
    assert isinstance(walked["before"], LbMode)
    assert walked["after"] == walked["before"]


def test_no_tour_object_is_left_in_minio(walked: dict[str, Any], topology: Topology) -> None:
    s3 = storage.client(topology)
    for prefix in OBJECT_PREFIXES:
        listed = s3.list_objects_v2(Bucket=storage.MEDIA_BUCKET, Prefix=prefix)
        assert listed.get("KeyCount", 0) == 0, [o["Key"] for o in listed.get("Contents", [])]


def test_no_tour_row_is_left_in_the_shop(walked: dict[str, Any], topology: Topology) -> None:
    for cluster in topology.shards:
        with shard_primary(topology, cluster.name) as conn:
            for prefix in BODY_PREFIXES:
                row = conn.execute(
                    "SELECT count(*) FROM reviews WHERE body LIKE %s", (prefix + "%",)
                ).fetchone()
                assert row and row[0] == 0, f"{cluster.name} keeps reviews of {prefix!r}"
            row = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = %s", (acid.TRIGGER,)
            ).fetchone()
            assert row and row[0] == 0, f"{cluster.name} keeps the tour's trigger"
    leader = next(
        n for n, role in dnsrecords.cluster_roles(topology.catalog).items() if role == "leader"
    )
    with connect(topology, topology.nodes[leader]) as conn:
        row = conn.execute("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'tour-%'")
        found = row.fetchone()
        assert found and found[0] == 0


def test_every_replica_replays_again(walked: dict[str, Any], topology: Topology) -> None:
    for cluster in topology.shards:
        for name, role in dnsrecords.cluster_roles(cluster).items():
            if role == "leader":
                continue
            node = topology.nodes[name]
            with connect(topology, node, superuser=True, dbname=database_of(cluster)) as conn:
                row = conn.execute("SELECT pg_is_wal_replay_paused()").fetchone()
            assert row and row[0] is False, f"{name} still does not replay"


def test_one_step_runs_alone_from_the_cli(topology: Topology) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reviewlab_lab.cli", "tour", "run", "api-404"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "PASS  /api/coupons: 404 http_404" in done.stdout
    assert "tour: 1 of 1 steps passed" in done.stdout


def test_an_unknown_step_is_one_line(topology: Topology) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reviewlab_lab.cli", "tour", "run", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: no tour step 'nope'; steps: {', '.join(registry.names())}"
    ]


def test_the_scratch_masters_are_gone(walked: dict[str, Any], topology: Topology) -> None:
    node = topology.of_kind("postgres")[0].name
    left = runtimes.of(topology).run_in_node(
        node, ["sh", "-c", f"ls -d {multimaster.SCRATCH_PREFIX}* 2>/dev/null || true"]
    )
    assert left.strip() == "", left


def cpu_budget(runtime: runtimes.Runtime, name: str) -> str:
    """Node NAME's CPU budget: 'none', or the lines of its processes' cgroups that hold one."""
    held = [
        line
        for pid in runtime.node_pids(name)  # type: ignore[attr-defined]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if cpucap.GROUP in line
    ]
    return "; ".join(held) or "none"


def test_no_web_server_is_left_with_a_cpu_budget(
    walked: dict[str, Any], topology: Topology
) -> None:
    runtime = runtimes.of(topology)
    webs = [w.name for w in topology.of_kind("web")]
    assert {name: cpu_budget(runtime, name) for name in webs} == dict.fromkeys(webs, "none")
    assert walked["after"].drained == ()
