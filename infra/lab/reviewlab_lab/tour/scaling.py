"""Step scale-out: the vIP's pool grows live from one web server to every one, each server
held to a small CPU budget as if on a machine of its own, and the throughput grows with it.
Then the same servers without budgets: on one machine they share its cores."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from reviewlab_lab import lbdemo, wrk
from reviewlab_lab.loadbalancer import LbMode
from reviewlab_lab.runtimes.base import Runtime
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

PATH = "/healthz"
# A server out of its budget for the moment holds its requests until its next slice of CPU;
# least connections sends the next request elsewhere, where round robin would queue it there.
ALGORITHM = "least_conn"
CONNECTIONS = 32
# A server out of its budget answers late, never wrongly: wrk waits this long for an answer.
TIMEOUT_S = 10
SECONDS_EACH = 3
# A short burst per pool size, to see which servers answer (their X-Served-By header).
SAMPLE = 30
# Each web server's CPU budget while the pool grows: a small machine of its own. It is sized
# from what the whole pool serves without budgets, so that the budgeted pool stays well below
# what the machine's path (wrk, the vIP, the network) carries: 0.2 core per server when that
# is 6,400 req/s (natively here), less on a slower path (Docker's bridge, a busy machine).
CORES_AT_REFERENCE = 0.2
REFERENCE_RPS = 6400.0
MIN_CORES, MAX_CORES = 0.02, 0.2
# Then one budgeted server is measured: if every server at that rate would bring the pool
# above this share of the unbudgeted throughput, the budget shrinks to fit under it (the
# path's ceiling, not the servers, would decide the last rows otherwise).
HEADROOM = 0.4


def budget(shared_rps: float) -> float:
    """Each server's first CPU budget, in cores, for a pool that serves SHARED_RPS unbudgeted."""
    cores = CORES_AT_REFERENCE * shared_rps / REFERENCE_RPS
    return round(min(MAX_CORES, max(MIN_CORES, cores)), 2)


def rebudget(cores: float, one_rps: float, shared_rps: float, servers: int) -> float:
    """The budget for SERVERS servers once one at CORES served ONE_RPS: unchanged when the
    whole budgeted pool fits under HEADROOM of SHARED_RPS at a linear gain, smaller if not."""
    fits = HEADROOM * shared_rps / (servers * one_rps) if one_rps > 0 else 1.0
    if fits >= 1.0:
        return cores
    return round(max(MIN_CORES, cores * fits), 2)


# Each server added: at least this much more throughput (a linear gain is x2, then x1.5),
# and the whole pool at least GROWS_BY times what one server serves (linear: x3). Loose, as
# the vIP, wrk and the lab's other nodes share the machine too.
RISES_BY = 1.1
GROWS_BY = 1.8


@dataclass
class Level:
    """One pool size: the servers in rotation, who answered, the requests that failed over
    its runs, and its best run's figures."""

    serving: list[str]
    answered: list[str]
    failed: int
    result: wrk.Result


@dataclass
class ScaleEvidence(Evidence):
    levels: list[Level] = field(default_factory=list)
    cores: int = 0
    # Every server in rotation, no budgets: what one machine's shared cores give.
    shared: wrk.Result | None = None
    cores_each: float = 0.0
    found: LbMode = field(default_factory=LbMode)
    left: LbMode | None = None


def growth_order(lab: TourLab) -> list[str]:
    """The web servers in the order the pool grows: those that take uploads first, so that
    every pool size still serves every route."""
    webs = lab.topology.of_kind("web")
    return [w.name for w in sorted(webs, key=lambda w: ("upload" not in w.roles, w.name))]


def unbudget(runtime: Runtime, name: str) -> Callable[[], None]:
    return lambda: runtime.limit_cpu(name, None)


def run(lab: TourLab) -> ScaleEvidence:
    topology, runtime = lab.topology, lab.runtime
    found = runtime.lb_mode()
    lab.undo_later(f"the vIP back to {found}", lambda: runtime.apply_lb_mode(found))
    vip = topology.nodes[topology.services["www"]]
    order = growth_order(lab)
    seen = ScaleEvidence(cores=os.cpu_count() or 1, found=found)
    # The vIP's own address on the lab network: under Compose its published port is Docker's
    # userspace proxy, which would cap the throughput before the web servers do.
    url = f"{vip.url}{PATH}"
    runtime.apply_lb_mode(LbMode("l7", ALGORITHM))
    lab.say(f"every server in rotation, no CPU budgets; wrk, {SECONDS_EACH} s ...")
    wrk.wrk("warm-up", url, 1, CONNECTIONS)  # new workers after the reload, fresh connections
    seen.shared = wrk.wrk("shared cores", url, SECONDS_EACH, CONNECTIONS)
    cores = budget(seen.shared.per_second)
    for name in order:
        lab.undo_later(f"{name} without a CPU budget", unbudget(runtime, name))
        runtime.limit_cpu(name, cores)
    runtime.apply_lb_mode(LbMode("l7", ALGORITHM, drained=tuple(order[1:])))
    lab.say(f"one server at {cores} of a core, to size the budgets; wrk, {SECONDS_EACH} s ...")
    one = wrk.wrk("one budgeted server", url, SECONDS_EACH, CONNECTIONS, timeout_s=TIMEOUT_S)
    seen.cores_each = rebudget(cores, one.per_second, seen.shared.per_second, len(order))
    if seen.cores_each != cores:
        for name in order:
            runtime.limit_cpu(name, seen.cores_each)
    # Up, then down again: each size's best run counts, so a moment of load from elsewhere
    # on the machine cannot decide the claim alone.
    sizes = [*range(1, len(order) + 1), *range(len(order) - 1, 0, -1)]
    levels: dict[int, Level] = {}
    for size in sizes:
        mode = LbMode("l7", ALGORITHM, drained=tuple(order[size:]))
        runtime.apply_lb_mode(mode)
        serving = order[:size]
        lab.say(f"pool: {', '.join(serving)}; wrk, {CONNECTIONS} at a time, {SECONDS_EACH} s ...")
        sample = lbdemo.send(vip.url, SAMPLE, 3)
        result = wrk.wrk(f"{size} servers", url, SECONDS_EACH, CONNECTIONS, timeout_s=TIMEOUT_S)
        level = levels.setdefault(size, Level(serving, [], 0, result))
        level.answered = sorted({*level.answered, *sample.served})
        level.failed += sample.failed + result.errors
        if result.per_second > level.result.per_second:
            level.result = result
    seen.levels = [levels[size] for size in sorted(levels)]
    for name in order:
        runtime.limit_cpu(name, None)
    runtime.apply_lb_mode(found)
    seen.left = runtime.lb_mode()
    top = max(level.result.per_second for level in seen.levels)
    top = max(top, seen.shared.per_second)
    seen.shown.append(f"GET {url} with wrk, {CONNECTIONS} at a time;")
    seen.shown.append(
        f"each web server held to {seen.cores_each} of a core (its own small machine), {ALGORITHM}:"
    )
    seen.shown.append(f"{'servers':>8} {'req/s':>8} {'p50 ms':>7}  {'answered by':<18} throughput")
    for level in seen.levels:
        bar = "#" * round(20 * level.result.per_second / top)
        seen.shown.append(
            f"{len(level.serving):>8} {level.result.per_second:>8,.0f} "
            f"{level.result.p50_ms:>7.2f}  {','.join(level.answered):<18} {bar}"
        )
    bar = "#" * round(20 * seen.shared.per_second / top)
    seen.shown.append(
        f"{len(order):>8} {seen.shared.per_second:>8,.0f} {seen.shared.p50_ms:>7.2f}  "
        f"{'no budgets':<18} {bar}"
    )
    seen.shown.append(f"(without budgets every server shares this machine's {seen.cores} cores)")
    seen.shown.append(f"the vIP is back in {seen.left}, the mode it was found in")
    where = f"wrk on the machine -> the vIP {vip.endpoint}{PATH}"
    for level in seen.levels:
        label = f"{len(level.serving)} at {seen.cores_each} core: throughput"
        seen.add(label, level.result.per_second, "req/s", where)
    seen.add(f"{len(order)}, shared cores: throughput", seen.shared.per_second, "req/s", where)
    return seen


def check(seen: ScaleEvidence) -> str:
    require(len(seen.levels) >= 2, "the lab has one web server: there is nothing to add")
    for level in seen.levels:
        size = len(level.serving)
        require(
            level.answered == sorted(level.serving),
            f"with {', '.join(level.serving)} in rotation, {level.answered} answered",
        )
        require(
            level.failed == 0,
            f"{level.failed} requests failed with {size} in rotation",
        )
    rates = [level.result.per_second for level in seen.levels]
    for size, (before, after) in enumerate(itertools.pairwise(rates), 2):
        require(
            after >= RISES_BY * before,
            f"web server {size} should raise the throughput by x{RISES_BY}: "
            f"{before:,.0f} -> {after:,.0f} req/s",
        )
    require(
        rates[-1] >= GROWS_BY * rates[0],
        f"{len(rates)} web servers should serve x{GROWS_BY} what one does: "
        f"{rates[0]:,.0f} -> {rates[-1]:,.0f} req/s",
    )
    require(seen.shared is not None and seen.shared.errors == 0, "requests failed unbudgeted")
    require(seen.left == seen.found, f"the vIP was left in {seen.left}, not {seen.found}")
    steps = ", ".join(f"{n}: {rate:,.0f}" for n, rate in enumerate(rates, 1))
    return (
        f"servers in rotation -> req/s {steps} (x{rates[-1] / rates[0]:.2f} from 1 to "
        f"{len(rates)}); each pool size was served by its own servers only, and no request failed"
    )


STEP = Step(
    name="scale-out",
    title="Scalability: add servers, get throughput",
    concept=(
        "A system scales when adding resources adds capacity. Every web server here shares "
        "one machine, so each is first held to a small share of a CPU core, as if it had a "
        "small machine of its own (sized so that the path to them, not they, is never the limit). "
        "You will shrink the vIP's pool (least connections) to one "
        "server, then put the others back into rotation live and take them out again, "
        "measuring the throughput at each size with wrk (the better of two runs counts)."
    ),
    claim=(
        f"Each web server added raises the throughput (at least x{RISES_BY}), and the whole "
        f"pool serves at least x{GROWS_BY} what one server does; only the servers "
        "in rotation answer, no request fails while the pool changes, and the budgets and "
        "the pool are put back."
    ),
    saw=(
        "With a machine's worth of CPU each, every server added brings its own capacity, "
        "and the vIP spreads the load over it: that is scaling out (least connections steers "
        "around a server that is out of CPU for the moment; round robin would queue requests "
        "behind it). The last row is the "
        "same servers sharing this one machine: adding processes adds no cores, so the "
        "machine, not the server count, is the limit. Draining a server "
        "(`reviewlab lb set --drain web-3`) is also how you take one out for maintenance."
    ),
    run=run,
    check=check,
)
