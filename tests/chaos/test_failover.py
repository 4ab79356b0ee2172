"""Chaos under load through the vIP: what the report proves after each fault.

Each test runs one scenario exactly as `reviewlab chaos run` does, with the fault held a
little past Patroni's ttl where a failover must happen, and asserts the report's
invariants, not timings: no acknowledged write lost, no duplicate, no split brain, and the
lab fully redundant again afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab.chaos.run import Options, execute
from reviewlab_lab.chaos.scenarios import scenario

from tests.integration.nodes import Nodes

pytestmark = pytest.mark.chaos
# Past Patroni's ttl (20 s): the leader key expires and a replica is promoted inside the fault.
PAST_TTL_S = 25


def run(topology: Topology, name: str, **options: Any) -> dict[str, Any]:
    return execute(topology, Options(scenario(name), live=False, **options), lambda _: None)


def leaders(report: dict[str, Any]) -> dict[str, list[str]]:
    return {
        cluster: [n for n, m in members.items() if m["role"] == "leader"]
        for cluster, members in report["final"]["clusters"].items()
    }


def assert_whole_again(report: dict[str, Any], nodes: Nodes) -> None:
    assert report["timings"]["full_redundancy_s"] is not None, report["events"]
    assert all(len(names) == 1 for names in leaders(report).values()), leaders(report)
    nodes.wait_all_ready(within=60)


# What a fault may never cost: the report's goals about lost, duplicated or failed requests
# must be met. Its rates, p99s and waits are figures of a few seconds on two shared cores
# (measured: writes 77-122 % of the baseline; a replica-kill read p99 of 468 ms under Compose in
# a CI run that lost nothing): the report states each beside its goal, and the tests only check
# that it was measured, not how fast it was.
CORRECTNESS = (
    "acknowledged writes lost",
    "duplicate writes",
    "failed reads",
    "members carrying the vIP",
)


def correctness_missed(report: dict[str, Any]) -> list[str]:
    """The report's correctness goals that were missed (every other goal is a figure)."""
    return [
        f"{goal['what']}: {goal['measured']} (goal {goal['target']})"
        for goal in report["goals"]
        if goal["what"].startswith(CORRECTNESS) and not goal["met"]
    ]


def figures_measured(report: dict[str, Any]) -> list[str]:
    """The report's speed goals that have no number at all (a window with no request)."""
    return [
        goal["what"]
        for goal in report["goals"]
        if not goal["what"].startswith(CORRECTNESS) and goal["value"] is None
    ]


def test_a_killed_catalog_replica_costs_about_a_second_and_the_report_says_so(
    topology: Topology, nodes: Nodes
) -> None:
    report = run(topology, "replica-kill")
    names = {g["what"] for g in report["goals"]}
    assert {
        "reads/s during the impact vs the baseline",
        "writes/s during the impact vs the baseline",
    } <= names
    assert any(g["what"].startswith("read p99") for g in report["goals"])
    assert correctness_missed(report) == [], report["goals"]
    assert figures_measured(report) == [], report["goals"]
    # The DNS node's watch dropped the dead replica from replicas.catalog, and put it back.
    assert report["timings"]["dns_replicas_dropped_s"] is not None, report["events"]
    assert report["timings"]["dns_replicas_back_s"] is not None, report["events"]
    # Listed again: full redundancy (below) needs every replica in replicas.<cluster> for 3 s
    # in a row. The run's very last look may catch the watch dropping a replica that lags
    # under the load again, so it is not asked here.
    assert_whole_again(report, nodes)


def test_killing_a_catalog_replica_fails_no_request(topology: Topology, nodes: Nodes) -> None:
    report = run(topology, "replica-kill", duration=5)
    assert report["target"] in {m.name for m in topology.catalog.members}
    assert report["writes"]["acknowledged"] > 0
    assert report["writes"]["lost"] == 0
    assert report["writes"]["duplicates"] == 0
    for cluster, seen in report["clusters"].items():
        assert seen["reads_ok"] > 0, cluster
        assert seen["reads_failed"] == 0, (cluster, seen)
        assert seen["writes_failed"] == 0, (cluster, seen)
    assert_whole_again(report, nodes)


def test_a_lost_primary_fails_over_without_losing_an_acknowledged_write(
    topology: Topology, nodes: Nodes
) -> None:
    report = run(topology, "primary-loss", duration=PAST_TTL_S)
    shard = topology.nodes[report["target"]].cluster
    assert report["writes"]["acknowledged"] > 0
    assert report["writes"]["lost"] == 0, report["writes"]
    assert report["writes"]["duplicates"] == 0
    assert report["timings"]["promote_s"] is not None, report["events"]
    assert report["timings"]["dns_update_s"] is not None, report["events"]
    assert leaders(report)[shard] != [report["target"]], "no other member took over"
    assert report["clusters"][shard]["writes_ok"] > 0
    assert_whole_again(report, nodes)


def test_a_partitioned_primary_acknowledges_nothing_after_its_key_expired(
    topology: Topology, nodes: Nodes
) -> None:
    report = run(topology, "primary-partition", duration=PAST_TTL_S)
    shard = topology.nodes[report["target"]].cluster
    assert report["timings"]["promote_s"] is not None, report["events"]
    assert report["writes"]["lost"] == 0, report["writes"]
    assert report["writes"]["lost_after_key_expiry"] == 0
    assert report["writes"]["duplicates"] == 0
    assert leaders(report)[shard] != [report["target"]], "the cut-off primary kept its role"
    assert not nodes.runtime.partitioned(), "the partition was not undone"
    assert_whole_again(report, nodes)


def test_a_primary_lost_during_a_move_leaves_the_map_on_a_complete_copy(
    topology: Topology, nodes: Nodes
) -> None:
    from reviewlab_lab.resharding import runner

    before = runner.placement(topology)
    report = run(topology, "primary-loss-during-move", duration=PAST_TTL_S)
    shard = topology.nodes[report["target"]].cluster
    move = report["move"]
    assert report["writes"]["lost"] == 0, report["writes"]
    assert report["writes"]["duplicates"] == 0
    assert report["writes"]["on_two_shards"] == 0
    assert report["timings"]["promote_s"] is not None, report["events"]
    assert leaders(report)[shard] != [report["target"]], "no other member took over"
    # The move outlived the loss of its source's primary: retried, finished, verified.
    assert move["outcome"] == "done", move["notes"]
    assert move["retries"] > 0 and len(move["freezes_s"]) == 1
    assert all(v and v["buckets_checked"] == len(move["buckets"]) for v in move["verified"])
    assert move["map_restored"] and runner.placement(topology) == before
    assert_whole_again(report, nodes)


def assert_the_pair_lost_nothing(report: dict[str, Any], nodes: Nodes) -> None:
    """A fault of the vIP's pair: no write lost or doubled, every cluster read, no read failed
    after the client's one retry, every figure measured, the lab whole again."""
    assert report["writes"]["lost"] == 0 and report["writes"]["duplicates"] == 0
    for cluster, seen in report["clusters"].items():
        assert seen["reads_ok"] > 0, cluster
        assert seen["reads_failed"] == 0, (cluster, seen)
    assert correctness_missed(report) == [], report["goals"]
    assert figures_measured(report) == [], report["goals"]
    assert_whole_again(report, nodes)


def test_a_killed_vip_holder_hands_the_address_over_and_fails_no_read_after_one_retry(
    topology: Topology, nodes: Nodes
) -> None:
    report = run(topology, "lb-kill")
    members = {m.name for m in topology.load_balancers()}
    assert report["target"] in members
    assert report["timings"]["vip_moved_s"] is not None, report["events"]
    # A look may also catch a moment when no member answers on the address (node "").
    moved = [e for e in report["events"] if e["kind"] == "vip" and e["node"]]
    # The standby took it; the killed member came back as the standby and did not take it
    # back (nopreempt): the address moved exactly once.
    (standby,) = members - {report["target"]}
    assert [e["node"] for e in moved] == [standby], moved
    assert_the_pair_lost_nothing(report, nodes)


def test_a_partitioned_vip_pair_has_two_holders_then_one_and_fails_no_read_after_one_retry(
    topology: Topology, nodes: Nodes
) -> None:
    report = run(topology, "lb-partition")
    members = [m.name for m in topology.load_balancers()]
    assert report["target"] in members
    carried = [e["node"].split(",") for e in report["events"] if e["kind"] == "carriers"]
    # Cut off from each other, both members became masters and carried the address at once;
    # after the heal one alone did: the first member, whose priority is the higher.
    assert sorted(members) in [sorted(c) for c in carried], report["events"]
    assert report["timings"]["split_brain_s"] is not None
    assert report["timings"]["split_brain_for_s"] is not None
    assert carried[-1] == [members[0]], report["events"]
    assert_the_pair_lost_nothing(report, nodes)
