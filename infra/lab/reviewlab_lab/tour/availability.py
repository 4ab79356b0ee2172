"""Step primary-loss: a shard loses its primary under load. Its writes fail fast with a 503
until a replica is promoted (consistency kept: nothing acknowledged is lost), while its reads,
and every other shard, stay up (availability kept where it costs no consistency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reviewlab_lab.chaos import run as chaos
from reviewlab_lab.chaos.scenarios import SCENARIOS
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

SCENARIO = SCENARIOS["primary-loss"]
# Long enough for Patroni's leader key to expire and the replica to take over.
HOLD_S = 25.0
LOAD = 4
# A write that cannot commit answers within this long: the client learns at once, it does
# not hang (the web tier's connect timeout and its one retry fit well inside).
FAST_S = 3.0


@dataclass
class AvailabilityEvidence(Evidence):
    target: str = ""
    cluster: str = ""
    report: dict[str, Any] = field(default_factory=dict)


def run(lab: TourLab) -> AvailabilityEvidence:
    options = chaos.Options(scenario=SCENARIO, duration=HOLD_S, load=LOAD, live=False)
    lab.say(f"{LOAD} writers and {LOAD} readers through the vIP; a shard's primary is killed")
    lab.say(f"and kept down {HOLD_S:.0f} s (`reviewlab chaos run {SCENARIO.name}`) ...")
    report = chaos.execute(lab.topology, options, lambda line: lab.say(line[:200]))
    target = str(report["target"])
    cluster = lab.topology.nodes[target].cluster or ""
    seen = AvailabilityEvidence(target=target, cluster=cluster, report=report)
    clusters, writes, timings = report["clusters"], report["writes"], report["timings"]
    seen.shown.append(f"{target}, the primary of {cluster}, was killed and kept down:")
    seen.shown.append(
        f"{'cluster':<10} {'writes ok':>9} {'failed':>7} {'reads ok':>9} {'failed':>7}  failures"
    )
    for name, figures in clusters.items():
        slowest = figures["slowest_failure_s"]
        answered = (
            "-" if slowest is None else f"at most {slowest:.2f} s, {figures['failure_statuses']}"
        )
        seen.shown.append(
            f"{name:<10} {figures['writes_ok']:>9} {figures['writes_failed']:>7} "
            f"{figures['reads_ok']:>9} {figures['reads_failed']:>7}  {answered}"
        )
    promoted = timings.get("promote_s")
    seen.shown.append(
        f"a replica was promoted {promoted} s after the kill; {cluster}'s writes were back "
        f"at {clusters[cluster]['writes_back_s']} s"
    )
    seen.shown.append(f"acknowledged writes lost: {writes['lost']} of {writes['acknowledged']}")
    seen.shown.append(f"report: {report['path']}")
    where = f"the chaos load through the vIP, {cluster}"
    mine = clusters[cluster]
    seen.add("writes that failed while it was down", mine["writes_failed"], "", where)
    seen.add("slowest failed write", mine["slowest_failure_s"] or 0.0, "s", where)
    seen.add("reads that failed while it was down", mine["reads_failed"], "", where)
    seen.add("reads served while it was down", mine["reads_ok"], "", where)
    seen.add("writes back after the kill", mine["writes_back_s"] or "never", "s", where)
    seen.add("acknowledged writes lost", writes["lost"], "", "every shard's primary, read back")
    return seen


def check(seen: AvailabilityEvidence) -> str:
    clusters, writes = seen.report["clusters"], seen.report["writes"]
    mine = clusters[seen.cluster]
    require(writes["acknowledged"] > 0, "the load wrote nothing: there is nothing to keep")
    require(writes["lost"] == 0, f"{writes['lost']} acknowledged writes were lost")
    require(
        mine["writes_failed"] > 0,
        f"no write to {seen.cluster} failed: the primary loss was not seen by the writers",
    )
    require(
        mine["failure_statuses"] == [503],
        f"{seen.cluster}'s failed writes answered {mine['failure_statuses']}, not only 503",
    )
    slowest = mine["slowest_failure_s"]
    require(
        slowest is not None and slowest <= FAST_S,
        f"a failed write took {slowest} s to answer, more than {FAST_S} s",
    )
    require(mine["writes_back_s"] is not None, f"{seen.cluster}'s writes never came back")
    require(
        mine["reads_ok"] > 0 and mine["reads_failed"] == 0,
        f"{seen.cluster}'s reads: {mine['reads_ok']} ok, {mine['reads_failed']} failed",
    )
    others = {
        n: c["writes_failed"] + c["reads_failed"] for n, c in clusters.items() if n != seen.cluster
    }
    require(not any(others.values()), f"other clusters failed requests too: {others}")
    return (
        f"while {seen.target} was down, {mine['writes_failed']} writes to {seen.cluster} got a "
        f"503 within {slowest:.2f} s and came back at {mine['writes_back_s']} s; "
        f"{mine['reads_ok']} reads of it and every other shard kept answering; "
        f"0 of {writes['acknowledged']} acknowledged writes lost"
    )


STEP = Step(
    name="primary-loss",
    title="Availability vs consistency: a primary lost under load",
    concept=(
        "A shard has one primary, the only node that takes its writes. You will kill it under "
        "a steady load of reads and writes and keep it down while Patroni promotes the "
        "synchronous replica. It is the lab's chaos scenario primary-loss, run on a shorter "
        f"fault ({HOLD_S:.0f} s)."
    ),
    claim=(
        f"While the primary is gone, the shard's writes fail fast (a 503 within {FAST_S:.0f} s) "
        "until the replica takes over, and no acknowledged write is lost; the shard's reads and "
        "every other shard keep answering."
    ),
    saw=(
        "The lab chose consistency for writes: rather than accept a write no replica has, it "
        "refuses it at once with a 503 the client can retry (with the same Idempotency-Key), "
        "and no write it acknowledged disappears in the failover. Reads stay available from "
        "the replica. `reviewlab chaos report` shows the run, with its chart over time."
    ),
    run=run,
    check=check,
)
