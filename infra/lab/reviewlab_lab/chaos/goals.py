"""Each scenario's goals, measured from the run's own requests: met or not, with the numbers.

Throughput and p99 are compared per second with the baseline (the seconds before the fault).
The first second after the fault is where in-flight requests meet the fault, so the p99
goal leaves it out; the throughput goals are the mean over the impact window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reviewlab_lab.chaos.load import Outcome

STEP_S = 1.0
# The seconds after the fault that the p99 goal leaves out.
GRACE_S = 1.0


@dataclass(frozen=True)
class Second:
    """One second of traffic: its start (s after the fault), requests/s and p99 in ms."""

    t: float
    reads: int
    read_p99_ms: float | None
    writes: int
    write_p99_ms: float | None


@dataclass(frozen=True)
class Goal:
    what: str
    target: str
    measured: str
    met: bool
    # The numbers behind it, for tests that scale the margin on slow machines.
    value: float | None = None
    limit: float = 0.0
    at_least: bool = False  # met when value >= limit; else when value <= limit


def _p99_ms(latencies: list[float]) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1)


def series(outcomes: list[Outcome], fault_t: float, end_t: float) -> list[Second]:
    """Per second from the run's start to END_T, times relative to the fault (FAULT_T)."""
    seconds: list[Second] = []
    t = 0.0
    while t < end_t:
        mine = [o for o in outcomes if t <= o.at < t + STEP_S and o.ok]
        reads = [o.latency for o in mine if o.kind == "read"]
        writes = [o.latency for o in mine if o.kind != "read"]
        seconds.append(
            Second(round(t - fault_t, 2), len(reads), _p99_ms(reads), len(writes), _p99_ms(writes))
        )
        t += STEP_S
    return seconds


def _window(outcomes: list[Outcome], kind: str, since: float, until: float) -> list[Outcome]:
    return [o for o in outcomes if since <= o.at < until and (o.kind == "read") == (kind == "read")]


def _rate(outcomes: list[Outcome], kind: str, since: float, until: float) -> float:
    span = max(until - since, 1e-9)
    return sum(o.ok for o in _window(outcomes, kind, since, until)) / span


def throughput_goal(
    outcomes: list[Outcome],
    kind: str,
    share: float,
    baseline: tuple[float, float],
    impact: tuple[float, float],
) -> Goal:
    base = _rate(outcomes, kind, *baseline)
    during = _rate(outcomes, kind, *impact)
    ratio = during / base if base else 0.0
    return Goal(
        f"{kind}s/s during the impact vs the baseline",
        f">= {share:.0%}",
        f"{during:.0f}/s vs {base:.0f}/s = {ratio:.0%}",
        ratio >= share,
        round(ratio, 3),
        share,
        at_least=True,
    )


def p99_goal(
    outcomes: list[Outcome], kind: str, limit_ms: float, window: tuple[float, float]
) -> Goal:
    worst = _p99_ms([o.latency for o in _window(outcomes, kind, *window)])
    return Goal(
        f"{kind} p99 after the first {GRACE_S:.0f} s of the impact",
        f"<= {limit_ms:.0f} ms",
        "-" if worst is None else f"{worst:.0f} ms",
        worst is not None and worst <= limit_ms,
        worst,
        limit_ms,
    )


def longest_wait_goal(outcomes: list[Outcome], limit_s: float, window: tuple[float, float]) -> Goal:
    """The longest a reader waited for an answer (its retry included) in WINDOW."""
    reads = _window(outcomes, "read", *window)
    worst = max((o.latency for o in reads), default=None)
    retried = sum(o.retried for o in reads)
    return Goal(
        "longest wait for a read's answer, the retry included",
        f"<= {limit_s:.0f} s",
        "-" if worst is None else f"{worst:.2f} s ({retried} reads retried)",
        worst is not None and worst <= limit_s,
        None if worst is None else round(worst, 3),
        limit_s,
    )


def evaluate(
    scenario: str,
    outcomes: list[Outcome],
    writes: dict[str, Any],
    clusters: dict[str, Any],
    *,
    baseline: tuple[float, float],
    impact: tuple[float, float],
    vip_carriers: list[str] | None = None,
) -> list[Goal]:
    """The goals of SCENARIO, measured; IMPACT is from the fault to full redundancy;
    VIP_CARRIERS, the load balancers carrying the vIP at the run's end."""
    found = [
        Goal(
            "acknowledged writes lost",
            "0",
            f"{writes['lost']} of {writes['acknowledged']}",
            writes["lost"] == 0,
            writes["lost"],
        ),
        Goal(
            "duplicate writes",
            "0",
            str(writes["duplicates"]),
            writes["duplicates"] == 0,
            writes["duplicates"],
        ),
    ]
    failed_reads = sum(c["reads_failed"] for c in clusters.values())
    if scenario == "replica-kill":
        after_grace = (impact[0] + GRACE_S, impact[1])
        found += [
            Goal("failed reads", "0", str(failed_reads), failed_reads == 0, failed_reads),
            throughput_goal(outcomes, "read", 0.8, baseline, impact),
            p99_goal(outcomes, "read", 250, after_grace),
            throughput_goal(outcomes, "write", 0.9, baseline, impact),
        ]
    elif scenario in ("lb-kill", "lb-partition"):
        carriers = vip_carriers or []
        found += [
            Goal(
                "failed reads after the client's one retry",
                "0",
                str(failed_reads),
                failed_reads == 0,
                failed_reads,
            ),
            # Every read that ended after the fault: a retried one ends well past the kill.
            longest_wait_goal(outcomes, 3.0, (impact[0], float("inf"))),
            Goal(
                "members carrying the vIP at the end",
                "1",
                ", ".join(carriers) or "none",
                len(carriers) == 1,
                len(carriers),
            ),
        ]
    elif scenario in ("web-kill", "edge-kill", "lb-switch", "primary-loss-during-move"):
        found.append(Goal("failed reads", "0", str(failed_reads), failed_reads == 0, failed_reads))
    return found


def as_json(goals: list[Goal]) -> list[dict[str, Any]]:
    return [asdict(g) for g in goals]
