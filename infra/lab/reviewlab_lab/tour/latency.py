"""Step latency-vs-throughput: more requests at once raise throughput until the servers are
busy, then only latency grows."""

from __future__ import annotations

from dataclasses import dataclass, field

from reviewlab_lab import wrk
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

# Up to 64 at a time: on a slower path (Docker's bridge on a busy machine) 16 in flight may
# not reach the ceiling yet, and the flattening would not show.
CONCURRENCY = (1, 2, 4, 8, 16, 32, 64)
SECONDS_EACH = 2
PATH = "/healthz"
# Loose, but true of any server with a ceiling: the busiest level serves at least this much
# more than one request at a time, and takes at least this much longer per request.
RISES_BY = 1.3
LATENCY_GROWS_BY = 1.5
LOWER, UPPER = CONCURRENCY[len(CONCURRENCY) // 2], CONCURRENCY[-1]
# Flattening: from the middle level to the top the concurrency grows UPPER / LOWER times (8);
# a server at its ceiling gives less than half of that in throughput. (Comparing it with the
# gain below the middle misjudges a lab whose gain was already small there, as under Compose.)
FLATTENS_BELOW = UPPER / LOWER / 2


@dataclass
class LatencyEvidence(Evidence):
    results: list[tuple[int, wrk.Result]] = field(default_factory=list)


def run(lab: TourLab) -> LatencyEvidence:
    topology = lab.topology
    vip = topology.nodes[topology.services["www"]]
    url = f"{vip.host_url}{PATH}"
    seen = LatencyEvidence()
    for connections in CONCURRENCY:
        lab.say(f"wrk: {connections} at a time for {SECONDS_EACH} s ...")
        result = wrk.wrk(f"c={connections}", url, SECONDS_EACH, connections)
        seen.results.append((connections, result))
    top = max(r.per_second for _, r in seen.results)
    seen.shown.append(f"GET {url} with wrk, {SECONDS_EACH} s per level:")
    seen.shown.append(f"{'at a time':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  throughput")
    for connections, r in seen.results:
        bar = "#" * round(30 * r.per_second / top)
        seen.shown.append(
            f"{connections:>10} {r.per_second:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}  {bar}"
        )
    where = f"wrk on the machine -> the vIP {vip.host_address}:{vip.port}{PATH}"
    for connections, r in seen.results:
        seen.add(f"{connections} at a time: throughput", r.per_second, "req/s", where)
        seen.add(f"{connections} at a time: p50 latency", r.p50_ms, "ms", where)
    return seen


def check(seen: LatencyEvidence) -> str:
    require(len(seen.results) == len(CONCURRENCY), "not every concurrency level ran")
    failed = {c: r.errors for c, r in seen.results if r.errors}
    require(not failed, f"requests failed (non-2xx or socket errors) at {failed}")
    by = dict(seen.results)
    alone, busiest = by[CONCURRENCY[0]], by[CONCURRENCY[-1]]
    best = max(r.per_second for r in by.values())
    require(
        best >= RISES_BY * alone.per_second,
        f"throughput should rise with concurrency: {alone.per_second:,.0f} req/s alone, "
        f"at best {best:,.0f}",
    )
    # Over equal steps of concurrency (x4 each), so one noisy level cannot decide it alone.
    middle = by[CONCURRENCY[len(CONCURRENCY) // 2]]
    lower_gain = middle.per_second / alone.per_second
    upper_gain = busiest.per_second / middle.per_second
    require(
        upper_gain < FLATTENS_BELOW,
        f"throughput should flatten: from {LOWER} to {UPPER} at a time it rose "
        f"x{upper_gain:.2f}, not less than half of the x{UPPER // LOWER} in concurrency",
    )
    require(
        busiest.p50_ms >= LATENCY_GROWS_BY * alone.p50_ms,
        f"latency should grow under load: p50 {alone.p50_ms:.2f} ms alone, "
        f"{busiest.p50_ms:.2f} ms at {CONCURRENCY[-1]} at a time",
    )
    return (
        f"throughput {alone.per_second:,.0f} -> {busiest.per_second:,.0f} req/s "
        f"(x{lower_gain:.2f} from {CONCURRENCY[0]} to {LOWER} at a time, x{upper_gain:.2f} "
        f"from {LOWER} to {UPPER}); p50 latency "
        f"{alone.p50_ms:.2f} -> {busiest.p50_ms:.2f} ms"
    )


STEP = Step(
    name="latency-vs-throughput",
    title="Latency vs throughput",
    concept=(
        "Latency is how long one request takes; throughput is how many requests are served "
        "per second. You will send requests through the vIP one at a time, then "
        f"{', '.join(map(str, CONCURRENCY[1:-1]))} and {CONCURRENCY[-1]} at a time, "
        f"{SECONDS_EACH} s each."
    ),
    claim=(
        "Throughput rises with concurrency, then flattens (from "
        f"{LOWER} to {UPPER} at a time, {UPPER // LOWER} times the requests in flight buy "
        f"less than x{FLATTENS_BELOW:.0f} the throughput), while the median latency grows; "
        "no request fails."
    ),
    saw=(
        "Once every server is busy, more requests at once cannot be served faster: they "
        "queue, and each one waits longer (Little's law: requests in flight = throughput x "
        "latency). Aim for the most throughput at a latency you can accept; to raise the "
        "ceiling itself, add servers (scaling out)."
    ),
    run=run,
    check=check,
)
