"""The chaos report's arithmetic and the scenarios' choice of target, without a lab."""

from __future__ import annotations

import io
from typing import Any

import pytest
from reviewlab_common.topology import Topology, TopologyError, load
from reviewlab_lab.chaos import report, scenarios
from reviewlab_lab.chaos.watch import Look, Member, changes


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load(runtime="native")


def look(catalog: dict[str, Member], dns: str = "catalog-1", at: float = 0.0) -> Look:
    return Look(at, {"catalog": catalog}, {"catalog": dns}, {}, {})


HEALTHY = {
    "catalog-1": Member("leader", "running", None),
    "catalog-2": Member("sync_standby", "streaming", 0),
    "catalog-3": Member("replica", "streaming", 0),
}


def test_the_longest_gap_counts_from_the_fault_to_the_end() -> None:
    assert report.longest_gap([1.0, 1.5, 9.5], 0.0, 10.0) == 8.0
    assert report.longest_gap([], 2.0, 5.0) == 3.0


def test_p99_of_nothing_is_none_and_of_a_hundred_is_the_top_one() -> None:
    assert report.p99([]) is None
    assert report.p99([float(i) for i in range(1, 101)]) == 100.0


def test_a_promotion_a_lost_member_and_a_dns_move_are_events() -> None:
    after = {
        "catalog-2": Member("leader", "running", None),
        "catalog-3": Member("replica", "streaming", 0),
    }
    found = changes(look(HEALTHY), look(after, dns="catalog-2"))
    kinds = {(kind, node) for _, kind, node in found}
    assert ("promoted", "catalog-2") in kinds
    assert ("detected", "catalog-1") in kinds
    assert ("dns", "catalog-2") in kinds


def test_an_unchanged_lab_has_no_events() -> None:
    assert changes(look(HEALTHY), look(HEALTHY)) == []


def test_the_default_replica_is_the_asynchronous_one(topology: Topology) -> None:
    chosen = scenarios.scenario("replica-kill")
    assert scenarios.pick_target(topology, chosen, look(HEALTHY), None) == "catalog-3"


@pytest.mark.parametrize(
    ("name", "target", "says"),
    [
        ("replica-kill", "catalog-1", "catalog-1 is primary"),
        ("primary-loss", "web-1", "web-1 is a web node"),
        ("web-kill", "redis", "needs a web node"),
        ("web-kill", "nosuch", "no node named 'nosuch'"),
    ],
)
def test_a_target_of_the_wrong_kind_is_refused(
    topology: Topology, name: str, target: str, says: str
) -> None:
    with pytest.raises(TopologyError, match=says):
        scenarios.pick_target(topology, scenarios.scenario(name), look(HEALTHY), target)


def test_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(TopologyError, match="replica-kill"):
        scenarios.scenario("meteor")


def test_a_partition_cuts_a_member_from_etcd_and_its_peers(topology: Topology) -> None:
    peers = scenarios.peers_of(topology, "reviews-1a")
    assert "reviews-1b" in peers
    assert {n.name for n in topology.of_kind("etcd")} <= set(peers)
    assert "reviews-1a" not in peers


def test_a_partitioned_load_balancer_is_cut_from_its_peer_only(topology: Topology) -> None:
    members = [m.name for m in topology.load_balancers()]
    assert scenarios.peers_of(topology, members[0]) == members[1:]
    assert scenarios.scenario("lb-partition").target == scenarios.HOLDER


def test_two_members_carrying_the_vip_is_a_split_brain_event_and_a_timing() -> None:
    from reviewlab_lab.chaos.watch import Event

    one = Look(0.0, {}, {}, {}, {}, vip_holder="lb-1", vip_carriers=["lb-1"])
    two = Look(0.5, {}, {}, {}, {}, vip_holder="lb-2", vip_carriers=["lb-1", "lb-2"])
    assert ("lb-1 and lb-2 carry the vIP at once: split brain", "carriers", "lb-1,lb-2") in (
        changes(one, two)
    )
    assert ("only lb-1 carries the vIP", "carriers", "lb-1") in changes(two, one)
    # A killed member's container takes its copy along: for a moment nobody carries it.
    none = Look(1.0, {}, {}, {}, {}, vip_holder=None, vip_carriers=[])
    assert ("no load balancer carries the vIP", "carriers", "") in changes(one, none)
    events = [
        Event(-1.0, "", "carriers", "lb-1"),
        Event(1.2, "", "carriers", "lb-1,lb-2"),
        Event(11.7, "", "carriers", "lb-1"),
    ]
    assert report.split_brain(events) == {"split_brain_s": 1.2, "split_brain_for_s": 10.5}
    assert report.split_brain(events[:2]) == {"split_brain_s": 1.2, "split_brain_for_s": None}
    assert report.split_brain([]) == {"split_brain_s": None, "split_brain_for_s": None}


def test_a_pair_goal_wants_one_member_carrying_the_vip_at_the_end() -> None:
    from reviewlab_lab.chaos import goals

    writes = {"lost": 0, "acknowledged": 10, "duplicates": 0}
    outcomes = _steady(50, 0.03, 0, 10)
    clusters = {"catalog": {"reads_failed": 0}}
    window = {"baseline": (1.0, 4.0), "impact": (4.0, 8.0)}

    def carried(carriers: list[str]) -> goals.Goal:
        found = goals.evaluate(
            "lb-partition", outcomes, writes, clusters, **window, vip_carriers=carriers
        )
        return next(g for g in found if g.what == "members carrying the vIP at the end")

    assert carried(["lb-1"]).met
    both = carried(["lb-1", "lb-2"])
    assert not both.met and both.measured == "lb-1, lb-2"
    assert not carried([]).met


def test_the_live_view_fits_80x24_and_shows_the_dns_records_and_real_states() -> None:
    from reviewlab_lab.chaos import view
    from reviewlab_lab.chaos.load import Outcome
    from reviewlab_lab.chaos.watch import Event, Look, Member
    from rich.console import Console

    clusters = {
        name: {
            f"{name}-1": Member("leader", "running", None),
            f"{name}-2": Member("sync_standby", "streaming", 0),
            f"{name}-3": Member("replica", "streaming", 40488),
        }
        for name in ("catalog", "reviews-0", "reviews-1")
    }
    look = Look(
        at=0.0,
        clusters=clusters,
        dns_primary={c: f"{c}-1" for c in clusters},
        nodes={"catalog-3": "stopped"},
        webs_ready={"web-1": True, "web-2": True, "web-3": False},
        dns_replicas={c: [f"{c}-2"] for c in clusters},
    )
    outcomes = [
        Outcome(at=t / 10, kind=k, shard="catalog", ok=True, status=200, latency=0.02)
        for t in range(300)
        for k in ("read", "write")
    ]
    events = [Event(float(i), f"event number {i} " + "x" * 90, "node") for i in range(40)]
    console = Console(width=80, height=24, record=True, color_system=None, file=io.StringIO())
    console.print(
        view.render("chaos replica-kill on catalog-3", "fault", outcomes, 30.0, look, events)
    )
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) <= 24, lines
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    text = "\n".join(lines)
    assert "replicas catalog-2" in text
    assert "3 repl STOPPED" in text  # the runtime's word, not Patroni's stale "streaming"
    assert "event number 39" in text  # the newest event is on screen
    assert any(ch in text for ch in view.BARS)


def _steady(reads_per_s: int, latency: float, since: float, until: float) -> list[Any]:
    from reviewlab_lab.chaos.load import Outcome

    count = int((until - since) * reads_per_s)
    return [
        Outcome(
            at=since + i / reads_per_s,
            kind=kind,
            shard="catalog",
            ok=True,
            status=200,
            latency=latency,
        )
        for i in range(count)
        for kind in ("read", "write")
    ]


def _replica_kill_goals(during_rate: int, during_latency: float) -> dict[str, Any]:
    from reviewlab_lab.chaos import goals

    outcomes = _steady(100, 0.02, 0, 4) + _steady(during_rate, during_latency, 4, 14)
    clusters = {"catalog": {"reads_failed": 0}}
    writes = {"lost": 0, "acknowledged": 10, "duplicates": 0}
    found = goals.evaluate(
        "replica-kill", outcomes, writes, clusters, baseline=(1, 4), impact=(4, 14)
    )
    return {g.what: g for g in found}


def test_replica_kill_goals_are_met_when_the_loss_costs_little() -> None:
    found = _replica_kill_goals(95, 0.05)
    assert all(g.met for g in found.values()), found
    assert found["reads/s during the impact vs the baseline"].value == 0.95


def test_replica_kill_goals_say_not_met_with_the_numbers_when_reads_stall() -> None:
    found = _replica_kill_goals(6, 2.0)
    reads = found["reads/s during the impact vs the baseline"]
    assert not reads.met and reads.measured == "6/s vs 100/s = 6%"
    p99 = next(g for w, g in found.items() if w.startswith("read p99"))
    assert not p99.met and p99.measured == "2000 ms"


def test_the_chart_is_svg_with_both_series_and_the_fault() -> None:
    import xml.dom.minidom

    from reviewlab_lab.chaos import chart, goals

    seconds = goals.series(_steady(50, 0.03, 0, 10), 4.0, 10.0)
    picture = chart.svg("replica-kill on catalog-3", seconds, (0.0, 3.0))
    xml.dom.minidom.parseString(picture)
    assert picture.count("<polyline") == 3  # reads/s, writes/s, read p99
    assert ">fault<" in picture


def test_a_replica_ejected_by_a_read_router_is_an_event() -> None:
    from reviewlab_lab.chaos.watch import Look, changes

    before = Look(0.0, {}, {}, {}, {}, {}, {})
    now = Look(0.5, {}, {}, {}, {}, {}, {"catalog-2": ["web-1", "web-3"]})
    assert changes(before, now) == [
        ("catalog-2 ejected by the read router of web-1, web-3", "ejected", "catalog-2")
    ]
    assert changes(now, now) == []


def test_writes_read_back_count_a_second_id_for_one_body_as_a_duplicate() -> None:
    from reviewlab_lab.chaos.load import Outcome
    from reviewlab_lab.chaos.report import StoredRow, count_writes

    def write(review_id: int | None, key: str) -> Outcome:
        return Outcome(1.0, "write", "reviews-0", review_id is not None, 201, 0.01, review_id, key)

    outcomes = [write(11, "k1"), write(12, "k2"), write(None, "k3"), write(13, "k3")]
    acked = {o.review_id: o for o in outcomes if o.review_id}
    stored = [
        StoredRow("reviews-0", 11, "chaos r k1"),
        StoredRow("reviews-0", 12, "chaos r k2"),
        StoredRow("reviews-0", 99, "chaos r k2"),  # a second review for one write
        StoredRow("reviews-0", 13, "chaos r k3"),
        StoredRow("reviews-1", 13, "chaos r k3"),  # the same row on another shard: a copy
    ]
    counted = count_writes(acked, stored, outcomes)
    assert counted["acknowledged"] == 3 and counted["lost"] == 0
    assert counted["duplicates"] == 1
    assert counted["duplicate_examples"] == [{"body": "chaos r k2", "ids": ["12", "99"]}]
    assert counted["on_two_shards"] == 1
    assert counted["kept_unacknowledged"] == 1  # 99: stored, never acknowledged
    assert counted["retried_keys"] == 1


def test_reading_the_same_rows_twice_is_no_duplicate() -> None:
    from reviewlab_lab.chaos.report import StoredRow, count_writes

    twice = [StoredRow("reviews-0", 11, "chaos r k1")] * 2
    assert count_writes({}, twice, [])["duplicates"] == 0


def test_the_clean_up_pattern_matches_its_prefix_literally() -> None:
    from reviewlab_lab.chaos.cleanup import like_prefix

    assert like_prefix("chaos 1a2b_ ") == "chaos 1a2b\\_ %"
    assert like_prefix("50%") == "50\\%%"


def test_a_body_of_the_run_posted_by_another_user_is_no_duplicate() -> None:
    from reviewlab_lab.chaos.load import LOAD_USER, Outcome
    from reviewlab_lab.chaos.report import StoredRow, count_writes

    acked = {11: Outcome(1.0, "write", "reviews-0", True, 201, 0.01, 11, "k1")}
    stored = [
        StoredRow("reviews-0", 11, "chaos r k1", LOAD_USER),
        StoredRow("reviews-0", 12, "chaos r k1", LOAD_USER + 1),  # a fuzzer's copy
        StoredRow("reviews-1", 13, "chaos r k1", LOAD_USER + 1),
    ]
    counted = count_writes(acked, stored, list(acked.values()))
    assert counted["duplicates"] == 0 and counted["lost"] == 0
    assert counted["posted_by_others"] == 2
    assert counted["kept_unacknowledged"] == 0
