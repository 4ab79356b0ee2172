"""Step load-balancer: one vIP, three web servers, and how each algorithm shares the load."""

from __future__ import annotations

from dataclasses import dataclass, field

from reviewlab_lab import lbdemo, loadbalancer
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

# The article's three; `random_two` (power of two choices) is `reviewlab lb set`'s fourth.
ALGORITHMS = ("round_robin", "random", "least_conn")
# A bounded burst per algorithm: enough requests for a share to mean something.
BURST = 150
CONCURRENCY = 6
# Round robin hands requests out in turn; each nginx worker keeps its own turn, so a share may
# be off by a request or two per worker, never more.
ROUND_ROBIN_SLACK = 4


@dataclass
class LbEvidence(Evidence):
    found: LbMode = field(default_factory=LbMode)
    left: LbMode | None = None
    webs: list[str] = field(default_factory=list)
    outcomes: dict[str, lbdemo.Outcome] = field(default_factory=dict)


def run(lab: TourLab) -> LbEvidence:
    topology, runtime = lab.topology, lab.runtime
    found = runtime.lb_mode()
    lab.undo_later(f"the vIP back to {found}", lambda: runtime.apply_lb_mode(found))
    vip_node = topology.nodes[topology.services["www"]]
    webs = [w.name for w in loadbalancer.pools(topology)["web_api"]]
    seen = LbEvidence(found=found, webs=webs)
    for algorithm in ALGORITHMS:
        mode = LbMode("l7", algorithm)
        runtime.apply_lb_mode(mode)
        lab.say(f"vIP switched to {mode}; {BURST} GETs, {CONCURRENCY} at a time ...")
        outcome = lbdemo.send(vip_node.host_url, BURST, CONCURRENCY)
        seen.outcomes[algorithm] = outcome
        where = f"the vIP {vip_node.host_address}:{vip_node.port}, {algorithm}"
        seen.add(f"{algorithm}: throughput", outcome.per_second, "req/s", where)
        seen.add(f"{algorithm}: p99 latency", outcome.p99_ms, "ms", where)
    runtime.apply_lb_mode(found)
    seen.left = runtime.lb_mode()
    seen.shown.append("share of the requests each web server served (its X-Served-By header):")
    seen.shown += lbdemo.table(webs, seen.outcomes).splitlines()
    seen.shown.append(f"the vIP is back in {seen.left}, the mode it was found in")
    return seen


def check(seen: LbEvidence) -> str:
    require(
        set(seen.outcomes) == set(ALGORITHMS),
        f"only {sorted(seen.outcomes)} ran, not every one of {ALGORITHMS}",
    )
    for algorithm, outcome in seen.outcomes.items():
        require(outcome.failed == 0, f"{algorithm}: {outcome.failed} requests failed")
        idle = [w for w in seen.webs if outcome.served[w] == 0]
        require(not idle, f"{algorithm}: {', '.join(idle)} served nothing")
        strangers = set(outcome.served) - set(seen.webs)
        require(not strangers, f"{algorithm}: answered by {sorted(strangers)}, not a web server")
    counts = [seen.outcomes["round_robin"].served[w] for w in seen.webs]
    require(
        max(counts) - min(counts) <= ROUND_ROBIN_SLACK,
        f"round_robin should share requests in turn; the web servers served {counts}",
    )
    require(
        seen.left == seen.found,
        f"the vIP was left in {seen.left}, not the mode it was found in ({seen.found})",
    )
    return (
        f"every algorithm spread {BURST} requests over all {len(seen.webs)} web servers "
        f"(round_robin {'/'.join(map(str, counts))}); the vIP is back in {seen.found}"
    )


STEP = Step(
    name="load-balancer",
    title="Scaling out behind a load balancer",
    concept=(
        "One web server has a ceiling, so the shop runs three behind a load balancer that "
        "owns one virtual IP (the vIP) and picks a server for each request. You will send the "
        "same burst under round robin (in turn), random, and least connections (the least "
        "busy), and count who served each request."
    ),
    claim=(
        "Under each algorithm every web server serves part of the burst and no request "
        "fails; round robin's shares are equal to within a few requests; the vIP is left in "
        "the mode it was found in."
    ),
    saw=(
        "With equal servers every algorithm spreads the load about evenly: round robin "
        "exactly, random only on average, least connections by who is free. Least "
        "connections pays off when one server is slow (`make lb-demo` shows it). The vIP's "
        "own view of the same traffic: `reviewlab lb stats --since 60`."
    ),
    run=run,
    check=check,
)
