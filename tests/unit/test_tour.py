"""The guided tour without a lab: its steps and their order, docs/tour.md, each claim's check,
and that whatever a step changed is put back when it fails or is interrupted."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from reviewlab_common.topology import Topology, parse
from reviewlab_lab import cli, loadbalancer, tourcli
from reviewlab_lab.lbdemo import Outcome as Burst
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.paths import TOPOLOGY_PATH
from reviewlab_lab.runtimes.base import SwitchFailed
from reviewlab_lab.tour import (
    availability,
    balancing,
    cdnsteps,
    consistency,
    dnsviews,
    docs,
    latency,
    layers,
    multimaster,
    registry,
    runner,
    scaling,
)
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab
from reviewlab_lab.wrk import Result

# The article's order: DNS, the web server, scaling out, the CDN, the database (ACID,
# replication, why not master-master), sharding, then the closing trade-offs.
ARTICLE_ORDER = [
    "dns",
    "api-404",
    "load-balancer",
    "l4-vs-l7",
    "cdn",
    "acid",
    "replication",
    "multimaster",
    "sharding",
    "scale-out",
    "latency-vs-throughput",
    "consistency",
    "primary-loss",
]


@pytest.fixture()
def topology() -> Topology:
    with TOPOLOGY_PATH.open("rb") as handle:
        return parse(tomllib.load(handle))


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def test_the_steps_follow_the_article() -> None:
    assert registry.names() == ARTICLE_ORDER


@pytest.mark.parametrize("step", registry.STEPS, ids=lambda s: s.name)
def test_every_step_explains_itself_and_says_how_to_repeat_it(step: Step[Any]) -> None:
    assert step.title and step.claim and step.saw
    assert 2 <= sentences(step.concept) <= 4, step.concept
    assert step.repeat == f"reviewlab tour run {step.name}"
    args = cli.parser().parse_args(step.repeat.split()[1:])
    assert (args.command, args.tour_command, args.step) == ("tour", "run", step.name)
    assert registry.step(step.name) is step


def test_an_unknown_step_names_every_step() -> None:
    with pytest.raises(Exception, match="no tour step 'nope'; steps: dns, api-404"):
        registry.step("nope")


def test_the_unattended_tour_parses() -> None:
    args = cli.parser().parse_args(["tour", "--no-input"])
    assert args.no_input and args.tour_command is None


def test_the_listing_numbers_every_step() -> None:
    lines = tourcli.listing().splitlines()
    for number, name in enumerate(ARTICLE_ORDER, 1):
        assert lines[number - 1].split()[:2] == [f"{number}.", name]


def test_the_committed_tour_page_matches_the_steps() -> None:
    assert docs.stale_reason() is None, "docs/tour.md is stale: run `reviewlab tour docs`"


def test_the_page_goes_stale_when_a_step_changes() -> None:
    changed = [replace(registry.STEPS[0], saw="Something else."), *registry.STEPS[1:]]
    page = docs.markdown(changed)
    assert page != docs.TOUR_DOC.read_text()
    assert "Something else." in page
    for step in registry.STEPS:
        assert f"`{step.repeat}`" in page
        assert f"(#{registry.names().index(step.name) + 1}-{docs.anchor(step)})" in page


# Restoring: fakes of the lab's inputs (a runtime), the real runner.


@dataclass
class FakeRuntime:
    """A runtime whose vIP is in MODE and whose switches can be made to fail."""

    name: str = "native"
    mode: LbMode = field(default_factory=lambda: LbMode("l4", "least_conn"))
    refuse: set[str] = field(default_factory=set)
    applied: list[LbMode] = field(default_factory=list)

    def lb_mode(self) -> LbMode:
        return self.mode

    def apply_lb_mode(self, mode: LbMode) -> bool:
        self.applied.append(mode)
        if mode.algorithm in self.refuse:
            raise SwitchFailed(f"nginx rejected the config for {mode}")
        changed, self.mode = mode != self.mode, mode
        return changed


def fake_step(run: Any, check: Any = lambda evidence: "it held") -> Step[Evidence]:
    return Step(
        name="fake", title="A fake", concept="One. Two.", claim="c", saw="s", run=run, check=check
    )


def test_a_failed_step_puts_back_what_it_changed_newest_first(topology: Topology) -> None:
    undone: list[str] = []

    def run(lab: TourLab) -> Evidence:
        lab.undo_later("first", lambda: undone.append("first"))
        lab.undo_later("second", lambda: undone.append("second"))
        raise ClaimFailed("the replica was\nnot stale")

    outcome = runner.run_step(fake_step(run), topology, FakeRuntime(), print)  # type: ignore[arg-type]
    assert not outcome.passed
    assert outcome.verdict == "the replica was not stale"
    assert undone == ["second", "first"]


def test_an_interrupted_step_puts_back_then_stops(topology: Topology) -> None:
    undone: list[str] = []

    def run(lab: TourLab) -> Evidence:
        lab.undo_later("replay resumed", lambda: undone.append("resumed"))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run_step(fake_step(run), topology, FakeRuntime(), print)  # type: ignore[arg-type]
    assert undone == ["resumed"]


def test_a_step_that_cannot_put_something_back_fails_and_names_it(topology: Topology) -> None:
    def broken() -> None:
        raise OSError("MinIO did not answer")

    def run(lab: TourLab) -> Evidence:
        lab.undo_later("the tour's object out of MinIO", broken)
        return Evidence()

    outcome = runner.run_step(fake_step(run), topology, FakeRuntime(), print)  # type: ignore[arg-type]
    assert not outcome.passed
    assert "not put back: the tour's object out of MinIO: MinIO did not answer" in outcome.verdict


def test_the_load_balancer_step_leaves_the_mode_it_found_when_a_switch_fails(
    topology: Topology,
) -> None:
    found = LbMode("l4", "least_conn")
    runtime = FakeRuntime(mode=found, refuse={"round_robin"})
    outcome = runner.run_step(balancing.STEP, topology, runtime, print)  # type: ignore[arg-type]
    assert not outcome.passed
    assert "nginx rejected the config" in outcome.verdict
    assert runtime.applied == [LbMode("l7", "round_robin"), found]
    assert runtime.mode == found


def test_the_unattended_tour_prints_one_line_per_failure_and_exits_1(
    topology: Topology, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reviewlab_lab import runtimes
    from reviewlab_lab.chaos import run as chaos_run

    monkeypatch.setattr(chaos_run, "lab_is_up", lambda topology: None)
    monkeypatch.setattr(runtimes, "of", lambda topology: FakeRuntime())

    def fails(lab: TourLab) -> Evidence:
        raise ValueError("boom")

    steps = [fake_step(lambda lab: Evidence()), replace(fake_step(fails), name="broken")]
    with pytest.raises(SystemExit) as stopped:
        tourcli.walk(topology, steps, interactive=False)
    assert stopped.value.code == 1
    out, err = capsys.readouterr()
    assert "tour: 1 of 2 steps passed" in out
    assert err.splitlines() == [
        "error: tour step broken failed: unexpected ValueError: boom "
        "(set REVIEWLAB_DEBUG=1 to see where)"
    ]
    assert "Traceback" not in out + err


def test_the_interactive_tour_waits_for_enter_and_stops_on_q(topology: Topology) -> None:
    steps = [replace(fake_step(lambda lab: Evidence()), name=name) for name in ("one", "two")]
    answers = iter(["", "q"])
    shown: list[str] = []
    outcomes = runner.tour(
        steps,
        topology,
        FakeRuntime(),  # type: ignore[arg-type]
        say=shown.append,
        ask=lambda prompt: next(answers),
    )
    assert [o.name for o in outcomes] == ["one"]
    assert any(
        line.startswith("   Repeat it: reviewlab tour run one  (this run took ") for line in shown
    )


# Each claim's check: true evidence passes, and evidence that does not show it fails.


def wrk_result(per_second: float, p50_ms: float, errors: int = 0) -> Result:
    return Result("", per_second, p50_ms, p50_ms * 3, errors)


def latency_evidence(rates: list[float], p50s: list[float]) -> latency.LatencyEvidence:
    results = [
        (c, wrk_result(r, p)) for c, r, p in zip(latency.CONCURRENCY, rates, p50s, strict=True)
    ]
    return latency.LatencyEvidence(results=results)


def test_latency_vs_throughput_holds_when_throughput_rises_then_flattens() -> None:
    seen = latency_evidence(
        [600, 1100, 1700, 1900, 1950, 1980, 2000], [1.5, 1.7, 2.2, 4.0, 8.0, 16.0, 32.0]
    )
    assert "600 -> 2,000 req/s" in latency.check(seen)


@pytest.mark.parametrize(
    ("rates", "p50s", "why"),
    [
        ([1000, 1010, 1020, 1030, 1040, 1050, 1060], [1, 2, 4, 8, 16, 32, 64], "should rise"),
        ([500, 800, 1200, 1800, 2700, 4000, 7300], [1, 1.2, 1.5, 2, 2.5, 3, 3.5], "should flatten"),
        ([600, 1100, 1700, 1900, 1950, 1980, 2000], [2] * 7, "latency should grow"),
    ],
)
def test_latency_vs_throughput_fails_loudly_when_the_shape_is_not_there(
    rates: list[float], p50s: list[float], why: str
) -> None:
    with pytest.raises(ClaimFailed, match=why):
        latency.check(latency_evidence(rates, p50s))


def burst(counts: dict[str, int], failed: int = 0) -> Burst:
    return Burst(Counter(counts), failed, 500.0, 10.0, 30.0)


def lb_evidence(**changes: Any) -> balancing.LbEvidence:
    webs = ["web-1", "web-2", "web-3"]
    even = burst({"web-1": 50, "web-2": 50, "web-3": 50})
    seen = balancing.LbEvidence(
        found=LbMode(), left=LbMode(), webs=webs, outcomes=dict.fromkeys(balancing.ALGORITHMS, even)
    )
    return replace(seen, **changes)


def test_the_load_balancer_claim() -> None:
    assert "round_robin 50/50/50" in balancing.check(lb_evidence())
    uneven = {
        **lb_evidence().outcomes,
        "round_robin": burst({"web-1": 70, "web-2": 40, "web-3": 40}),
    }
    with pytest.raises(ClaimFailed, match="in turn"):
        balancing.check(lb_evidence(outcomes=uneven))
    idle = {**lb_evidence().outcomes, "random": burst({"web-1": 75, "web-2": 75})}
    with pytest.raises(ClaimFailed, match="random: web-3 served nothing"):
        balancing.check(lb_evidence(outcomes=idle))
    with pytest.raises(ClaimFailed, match="not the mode it was found in"):
        balancing.check(lb_evidence(left=LbMode("l4", "random")))


def test_the_dns_claim_fails_when_an_internal_name_leaks() -> None:
    seen = dnsviews.DnsEvidence(
        inside={"www": ["127.0.0.10"], "primary.catalog": ["127.0.0.23"]},
        outside={"www": ["127.0.0.10"], "primary.catalog": []},
        vip_inside="127.0.0.10",
        vip_outside="127.0.0.10",
        catalog_primary="127.0.0.23",
    )
    assert "does not exist outside" in dnsviews.check(seen)
    seen.outside["primary.catalog"] = ["127.0.0.23"]
    with pytest.raises(ClaimFailed, match="leaks to the public view"):
        dnsviews.check(seen)


def fetched(edge: str, status: str) -> cdnsteps.Fetch:
    return cdnsteps.Fetch(edge, "/media/x", status, 5.0, 0.0)


def test_the_cdn_claim_needs_a_hit_at_a_pushed_objects_first_request() -> None:
    seen = cdnsteps.CdnEvidence(
        pulled=[
            fetched("edge-1", "origin MISS"),
            fetched("edge-1", "edge HIT"),
            fetched("edge-2", "shield HIT"),
        ],
        expired=fetched("edge-1", "edge STALE"),
        refreshed=fetched("edge-1", "edge HIT"),
        pushed={"edge-1 /media/x": "origin MISS", "edge-2 /media/x": "shield HIT"},
        pushed_first=[fetched("edge-1", "edge HIT"), fetched("edge-2", "edge HIT")],
    )
    assert "edge HIT at the first request on 2 edges" in cdnsteps.check(seen)
    with pytest.raises(ClaimFailed, match="from its expired copy while it refreshes it"):
        cdnsteps.check(replace(seen, expired=fetched("edge-1", "edge HIT")))
    with pytest.raises(ClaimFailed, match="first request should be an edge HIT"):
        cdnsteps.check(replace(seen, pushed_first=[fetched("edge-2", "shield HIT")]))


def read(read_from: str, node: str, has_review: bool) -> consistency.Read:
    return consistency.Read(False, read_from, node, has_review, 3.0)


def test_the_consistency_claim_fails_unless_the_replica_was_really_stale() -> None:
    seen = consistency.ConsistencyEvidence(
        shard="reviews-1",
        replicas=["reviews-1b"],
        stale=read("reviews-1/replica", "reviews-1b", False),
        fresh=read("reviews-1/primary", "reviews-1a", True),
        behind_bytes=312,
        caught_up_ms=40.0,
    )
    assert "312 bytes behind" in consistency.check(seen)
    with pytest.raises(ClaimFailed, match="not stale"):
        consistency.check(replace(seen, stale=read("reviews-1/replica", "reviews-1b", True)))
    with pytest.raises(ClaimFailed, match="should go to a replica"):
        consistency.check(replace(seen, stale=read("reviews-1/primary", "reviews-1a", False)))
    with pytest.raises(ClaimFailed, match="replayed the write before it ended"):
        consistency.check(replace(seen, behind_bytes=None))


def test_a_token_names_its_shards_position() -> None:
    assert consistency.consistency_lsn("reviews-0=0/10,reviews-1=0/3000060", "reviews-1") == (
        "0/3000060"
    )
    with pytest.raises(ClaimFailed, match="names no position on reviews-2"):
        consistency.consistency_lsn("reviews-0=0/10", "reviews-2")


def test_the_layers_claim_needs_layer_7_to_route_by_path() -> None:
    webs, edges = ["web-1", "web-2", "web-3"], ["edge-1", "edge-2"]
    l4 = layers.LayerSeen("l4", ["web-2"] * 9, 404, "web-2", "")
    l7 = layers.LayerSeen("l7", webs * 3, 200, "edge-1", "edge HIT")
    seen = layers.LayersEvidence(
        found=LbMode(), left=LbMode(), seen={"l4": l4, "l7": l7}, webs=webs, edges=edges
    )
    assert "l4: one connection, one server (web-2)" in layers.check(seen)
    routed = replace(l4, media_status=200, media_served_by="edge-1")
    with pytest.raises(ClaimFailed, match="cannot be routed"):
        layers.check(replace(seen, seen={"l4": routed, "l7": l7}))
    with pytest.raises(ClaimFailed, match="should reach every web server"):
        layers.check(replace(seen, seen={"l4": l4, "l7": replace(l7, served=["web-1"] * 9)}))


def test_the_multimaster_claim_needs_a_lost_write_an_echo_and_a_halted_apply() -> None:
    seen = multimaster.MultiMasterEvidence(
        node="catalog-1",
        accepted={"a": True, "b": True},
        after={"a": 15, "b": 15},
        watched={"a": [15] * 20, "b": [15] * 20},
        rewrites={"a": 10, "b": 12},
        inserted={"a": 30, "b": 35},
        apply_errors={"a": 14, "b": 14},
        later_write_arrived=False,
    )
    assert "a lost its own write" in multimaster.check(seen)
    kept = replace(seen, watched={"a": [12] * 20, "b": [15] * 20})
    with pytest.raises(ClaimFailed, match="should lose its own acknowledged update"):
        multimaster.check(kept)
    with pytest.raises(ClaimFailed, match="keep bouncing"):
        multimaster.check(replace(seen, rewrites={"a": 0, "b": 0}))
    with pytest.raises(ClaimFailed, match="should stop each side's apply"):
        multimaster.check(replace(seen, apply_errors={"a": 0, "b": 3}))
    with pytest.raises(ClaimFailed, match="still reached b"):
        multimaster.check(replace(seen, later_write_arrived=True))


def test_the_multimaster_reads_are_shown_as_runs() -> None:
    assert multimaster.runs([15, 15, 12, 15]) == "15 x2, 12 x1, 15 x1"
    assert multimaster.runs([]) == ""


# The scale-out step's claim, on evidence of the shape it measures.


def scale_evidence(rates: list[float], answered: list[list[str]] | None = None) -> Any:
    order = ["web-1", "web-2", "web-3"]
    levels = [
        scaling.Level(
            serving=order[: n + 1],
            answered=(answered[n] if answered else order[: n + 1]),
            failed=0,
            result=Result(f"{n + 1} servers", rate, 5.0, 9.0, 0),
        )
        for n, rate in enumerate(rates)
    ]
    shared = Result("shared cores", 4000.0, 3.0, 8.0, 0)
    found = LbMode("l4", "least_conn")
    return scaling.ScaleEvidence(levels=levels, cores=2, shared=shared, found=found, left=found)


def test_scale_out_holds_when_each_server_adds_throughput() -> None:
    verdict = scaling.check(scale_evidence([1000.0, 1900.0, 2700.0]))
    assert "req/s 1: 1,000, 2: 1,900, 3: 2,700 (x2.70 from 1 to 3)" in verdict


@pytest.mark.parametrize(
    ("rates", "failure"),
    [
        ([1000.0, 1050.0, 2000.0], "web server 2 should raise the throughput by x1.1"),
        ([1000.0, 1900.0, 2000.0], "web server 3 should raise the throughput by x1.1"),
        ([1000.0, 1200.0, 1500.0], "3 web servers should serve x1.8 what one does"),
    ],
)
def test_scale_out_fails_when_a_server_adds_nothing(rates: list[float], failure: str) -> None:
    with pytest.raises(ClaimFailed, match=failure):
        scaling.check(scale_evidence(rates))


def test_scale_out_fails_when_a_drained_server_answered() -> None:
    answered = [["web-1", "web-3"], ["web-1", "web-2"], ["web-1", "web-2", "web-3"]]
    with pytest.raises(ClaimFailed, match=r"with web-1 in rotation, \['web-1', 'web-3'\]"):
        scaling.check(scale_evidence([1000.0, 1900.0, 2700.0], answered))


def test_scale_out_fails_when_the_vip_is_not_put_back() -> None:
    seen = replace(scale_evidence([1000.0, 1900.0, 2700.0]), left=LbMode())
    with pytest.raises(ClaimFailed, match="the vIP was left in layer l7"):
        scaling.check(seen)


def test_the_pool_grows_from_the_servers_that_take_uploads(topology: Topology) -> None:
    lab = TourLab(topology=topology, runtime=FakeRuntime(), say=print)  # type: ignore[arg-type]
    order = scaling.growth_order(lab)
    assert order[0] == "web-1" and set(order) == {w.name for w in topology.of_kind("web")}
    uploads = [w.name for w in topology.of_kind("web") if "upload" in w.roles]
    loadbalancer.check_drain(topology, tuple(order[1:]))
    assert order[: len(uploads)] == uploads


# The primary-loss step's claim, on a chaos report of the shape the runner writes.


def chaos_report(**shard: Any) -> dict[str, Any]:
    def cluster(**changes: Any) -> dict[str, Any]:
        quiet = {
            "writes_ok": 900,
            "writes_failed": 0,
            "reads_ok": 800,
            "reads_failed": 0,
            "writes_back_s": None,
            "slowest_failure_s": None,
            "failure_statuses": [],
        }
        return quiet | changes

    lost = {
        "writes_failed": 30,
        "writes_back_s": 18.9,
        "slowest_failure_s": 1.3,
        "failure_statuses": [503],
    }
    return {
        "target": "reviews-1a",
        "clusters": {
            "catalog": cluster(writes_ok=0),
            "reviews-0": cluster(),
            "reviews-1": cluster(**(lost | shard)),
        },
        "writes": {"acknowledged": 1800, "lost": 0},
        "timings": {"promote_s": 18.1},
        "path": "reports/chaos-primary-loss.md",
    }


def loss(report: dict[str, Any]) -> availability.AvailabilityEvidence:
    return availability.AvailabilityEvidence(
        target="reviews-1a", cluster="reviews-1", report=report
    )


def test_primary_loss_holds_when_writes_fail_fast_and_reads_stay_up() -> None:
    verdict = availability.check(loss(chaos_report()))
    assert "30 writes to reviews-1 got a 503 within 1.30 s and came back at 18.9 s" in verdict
    assert "0 of 1800 acknowledged writes lost" in verdict


@pytest.mark.parametrize(
    ("shard", "failure"),
    [
        ({"slowest_failure_s": 9.5}, "a failed write took 9.5 s to answer"),
        ({"failure_statuses": [500, 503]}, r"answered \[500, 503\], not only 503"),
        ({"reads_failed": 3}, "reviews-1's reads: 800 ok, 3 failed"),
        ({"writes_back_s": None}, "reviews-1's writes never came back"),
        ({"writes_failed": 0}, "the primary loss was not seen by the writers"),
    ],
)
def test_primary_loss_fails_loudly(shard: dict[str, Any], failure: str) -> None:
    with pytest.raises(ClaimFailed, match=failure):
        availability.check(loss(chaos_report(**shard)))


def test_primary_loss_fails_when_a_write_is_lost_or_another_shard_suffers() -> None:
    report = chaos_report()
    report["writes"]["lost"] = 2
    with pytest.raises(ClaimFailed, match="2 acknowledged writes were lost"):
        availability.check(loss(report))
    report = chaos_report()
    report["clusters"]["catalog"]["reads_failed"] = 1
    with pytest.raises(ClaimFailed, match="other clusters failed requests too"):
        availability.check(loss(report))


def test_the_budget_shrinks_with_a_slower_path_within_its_bounds() -> None:
    assert scaling.budget(scaling.REFERENCE_RPS) == scaling.CORES_AT_REFERENCE
    assert scaling.budget(scaling.REFERENCE_RPS / 2) == 0.1
    assert scaling.budget(100.0) == scaling.MIN_CORES
    assert scaling.budget(50_000.0) == scaling.MAX_CORES


def test_the_budget_shrinks_when_the_budgeted_pool_would_reach_the_paths_ceiling() -> None:
    # Three servers at 1,000 each would be 3,000 of an unbudgeted 3,000: the budget shrinks
    # so that three fit under HEADROOM x 3,000.
    smaller = scaling.rebudget(0.2, 1000.0, 3000.0, 3)
    assert smaller == round(0.2 * scaling.HEADROOM, 2)
    assert scaling.rebudget(0.1, 200.0, 2000.0, 3) == 0.1
    assert scaling.rebudget(0.1, 50_000.0, 2000.0, 3) == scaling.MIN_CORES
