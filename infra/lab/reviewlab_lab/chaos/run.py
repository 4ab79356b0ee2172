"""One chaos run: load, a baseline, the fault, its end, recovery, then the report.

Every phase is bounded in time. Whatever happens (an error, Ctrl-C, SIGTERM), the fault is
undone before the run returns, so the shared lab is left whole.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from reviewlab_common.topology import Topology
from rich.console import Console
from rich.live import Live

from reviewlab_lab import consolefeed, ready, runtimes
from reviewlab_lab.chaos import cleanup, goals, report, view
from reviewlab_lab.chaos.load import LOAD_USER, Load
from reviewlab_lab.chaos.scenarios import (
    HOLDER,
    PRIMARY,
    REPLICA,
    Fault,
    Scenario,
    inject,
    pick_target,
)
from reviewlab_lab.chaos.watch import Look, Member, Watcher, describe, primaries
from reviewlab_lab.errors import LabFailed

BASELINE_S = 4.0
RECOVERY_S = 120.0
TAIL_S = 2.0
STEADY_S = 3.0
CAUGHT_UP_BYTES = 1 << 20
MAX_DURATION_S = 600.0
MAX_LOAD = 32
# A job a killed worker held is claimed by another after it has been idle 15 s.
PHOTO_JOBS_S = 90.0
# A client of the vIP repeats a read that got no answer once, this long after: past the
# standby's takeover of a silent holder (three missed 0.25 s adverts and its skew, 0.9 s).
CLIENT_RETRY_S = 1.5


@dataclass(frozen=True)
class Options:
    scenario: Scenario
    target: str | None = None
    duration: float | None = None
    load: int = 4
    live: bool = True
    # The report's timeline: every cluster's events, not only the ones the fault touched.
    all_events: bool = False


def check_options(options: Options) -> None:
    duration = options.duration
    if duration is not None and not 0 <= duration <= MAX_DURATION_S:
        raise LabFailed(f"--duration must be 0..{MAX_DURATION_S:.0f} seconds, not {duration}")
    if not 1 <= options.load <= MAX_LOAD:
        raise LabFailed(
            f"--load must be 1..{MAX_LOAD} (writers, and as many readers), not {options.load}"
        )


def lab_is_up(topology: Topology) -> None:
    runtime = runtimes.of(topology)
    if not runtime.running():
        raise LabFailed("the lab is not up: run `make up` first")
    www = topology.nodes[topology.services["www"]]
    if not ready.probe(topology, www).ready:
        raise LabFailed(f"the vIP {www.host_url} does not answer: `reviewlab status` shows why")


@contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGTERM, or the terminal closing (SIGHUP), ends the run the way Ctrl-C does, through
    the same clean-up."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in caught}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def caught_up(member: Member) -> bool:
    """Streaming and within CAUGHT_UP_BYTES: under steady writes, lag is rarely exactly 0."""
    return member.state == "streaming" and (member.lag or 0) <= CAUGHT_UP_BYTES


@dataclass
class Steady:
    """A condition that must hold without a break for STEADY_S (a restart can hide in a blink)."""

    check: Callable[[], bool]
    since: float = 0.0

    def held(self) -> bool:
        now = time.monotonic()
        if not self.check():
            self.since = 0.0
            return False
        self.since = self.since or now
        return now - self.since >= STEADY_S


def recovered(look: Look | None, topology: Topology, target: str, after: float) -> bool:
    """Full redundancy, seen after AFTER: every node runs, every cluster has one primary the
    DNS names, a synchronous standby, every replica streaming with no lag and listed under
    replicas.<cluster>; one load balancer alone holds the vIP; every web server answers."""
    if look is None or look.at <= after:
        return False
    if any(state != "running" for state in look.nodes.values()):
        return False
    for cluster, members in look.clusters.items():
        leaders = primaries(look)[cluster]
        if len(members) != len(topology.clusters[cluster].members) or len(leaders) != 1:
            return False
        if look.dns_primary[cluster] != leaders[0]:
            return False
        behind = [m for m in members.values() if m.role != "leader" and not caught_up(m)]
        if behind:
            return False
        # A replica serves reads again only once replicas.<cluster> lists it.
        listed = set(look.dns_replicas.get(cluster, []))
        if any(m.role != "leader" and name not in listed for name, m in members.items()):
            return False
        # Only a synchronous standby may be promoted without losing a write: one must exist.
        sync = any(m.role == "sync_standby" for m in members.values())
        if topology.clusters[cluster].synchronous_mode and not sync:
            return False
    # One load balancer answers on the vIP, and it alone carries it (no split brain left).
    one_holder = look.vip_holder is not None and look.vip_carriers == [look.vip_holder]
    return one_holder and all(look.webs_ready.values())


def execute(topology: Topology, options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the scenario under load; return the report (already written). Whatever happens,
    the reviews the load wrote are deleted before it returns."""
    check_options(options)
    lab_is_up(topology)
    load = Load(
        topology,
        writers=options.load,
        readers=options.load,
        photos=options.scenario.target == "worker",  # every segmentation job must finish
        read_retry_s=CLIENT_RETRY_S if options.scenario.target == HOLDER else None,
    )
    name = options.scenario.name
    ended = "ended before its report (see its output)"
    try:
        result = _execute(topology, options, load, say)
        report_path = str(result["path"])
        ended = f"finished: report {report_path.rsplit('/', 1)[-1]}"
        consolefeed.announce(topology, name, "finished", f"chaos {name} {ended}", report_path)
        return result
    except BaseException:
        consolefeed.announce(topology, name, "finished", f"chaos {name} {ended}")
        raise
    finally:
        try:
            say(f"cleaned up: {remove_writes(topology, load)}")
        except LabFailed as exc:
            say(
                f"the run's reviews are still in the shop ({exc}); "
                "`reviewlab reset --data` clears them"
            )


def remove_writes(topology: Topology, load: Load) -> cleanup.Removed:
    """The load's reviews, photos and Idempotency-Keys, gone from the shop."""
    return cleanup.remove_run(
        topology, body_prefix=load.body(""), key_prefix=f"{load.run_id}-", user_id=LOAD_USER
    )


def _execute(
    topology: Topology, options: Options, load: Load, say: Callable[[str], None]
) -> dict[str, Any]:
    runtime = runtimes.of(topology)
    chosen = options.scenario
    watcher = Watcher(topology, runtime, options.target or "")
    first_look = watcher.look()
    target = pick_target(topology, chosen, first_look, options.target)
    watcher.target = target
    cluster = topology.nodes[target].cluster if chosen.target in (PRIMARY, REPLICA) else None
    duration = chosen.duration if options.duration is None else options.duration
    console = Console()
    title = f"chaos {chosen.name} on {target}"
    phase = "baseline"
    fault = Fault([])
    marks: dict[str, float] = {}

    def frame() -> Any:
        return view.render(
            title,
            phase,
            load.snapshot(),
            load.now(),
            watcher.latest,
            watcher.events,
            height=console.size.height,
            width=console.size.width,
        )

    def wait(seconds: float, live: Live | None, until: Callable[[], bool] | None = None) -> bool:
        limit = time.monotonic() + seconds
        while time.monotonic() < limit:
            if until is not None and until():
                return True
            if live is not None:
                live.update(frame())
            time.sleep(0.25)
        return until is not None and until()

    started_wall = time.strftime("%Y-%m-%d %H:%M:%S")
    started_epoch = time.time()
    say(f"{title}: {chosen.about}")

    def tell(state: str, text: str) -> None:
        """The phase, to the console's event feed as well (it shows a CLI run live)."""
        consolefeed.announce(topology, chosen.name, state, f"{title}: {text}")

    tell("started", "baseline under load")
    with interrupts_as_keyboard():
        watcher.start()
        load.start()
        live = Live(frame(), console=console, refresh_per_second=2) if options.live else None
        try:
            if live is not None:
                live.start()
            wait(BASELINE_S, live)
            phase = f"fault ({chosen.fault}) for {duration:.0f} s"
            tell("phase", phase)
            watcher.fault_at = time.monotonic()
            marks["fault"] = load.now()
            watcher.note(f"fault: {chosen.fault} {target}", "fault", target)
            inject(topology, runtime, chosen, target, fault)
            if chosen.fault != "kill":
                wait(duration, live)
                problems = fault.undo()
                watcher.note(
                    f"restored {target}" + (f" ({'; '.join(problems)})" if problems else ""),
                    "restored",
                    target,
                )
            marks["restored"] = load.now()
            phase = "recovering: waiting for full redundancy"
            tell("phase", phase)
            restored_at = time.monotonic()
            steady = Steady(lambda: recovered(watcher.latest, topology, target, restored_at))
            back = wait(RECOVERY_S, live, steady.held)
            marks["redundant"] = steady.since - load.started if back else float("nan")
            if not back:
                watcher.note(f"not fully redundant within {RECOVERY_S:.0f} s", "node")
            phase = "tail"
            tell("phase", "recovered" if back else "not fully redundant in time")
            wait(TAIL_S, live)
        except KeyboardInterrupt:
            watcher.note("interrupted: restoring", "restored", target)
            raise
        finally:
            fault.undo()
            load.stop()
            watcher.stop()
            if live is not None:
                live.stop()
    end_t = load.now()
    jobs = None
    if load.photos:
        say(f"waiting up to {PHOTO_JOBS_S:.0f} s for every photo job to finish")
        jobs = load.photo_jobs(within=PHOTO_JOBS_S)
    say("reading every acknowledged write back from its shard's current primary")
    writes = report.read_back(topology, load)
    found_timings = report.timings(watcher.events, target, cluster)
    if chosen.fault == "partition":
        # The cut-off node's leader key expired when its peers lost it (or promoted another).
        expiry = found_timings.get("patroni_noticed_s") or found_timings.get("promote_s")
        writes["lost_after_key_expiry"] = (
            None
            if expiry is None
            else sum(at - marks["fault"] >= expiry for at in writes["lost_at_s"])
        )
    if marks.get("redundant") == marks.get("redundant"):  # not NaN
        found_timings["full_redundancy_s"] = round(marks["redundant"] - marks["fault"], 2)
    else:
        found_timings["full_redundancy_s"] = None
    clusters = report.per_cluster(load.outcomes, marks["fault"], end_t)
    result = {
        "scenario": chosen.name,
        "target": target,
        "about": chosen.about,
        "goal": chosen.goal,
        "runtime": runtime.name,
        "started": started_wall,
        "load": {"writers": options.load, "readers": options.load, "run_id": load.run_id},
        "fault_s": round(marks["restored"] - marks["fault"], 2),
        "run_s": round(end_t, 2),
        "writes": writes,
        "clusters": clusters,
        "goals": goals.as_json(
            goals.evaluate(
                chosen.name,
                load.outcomes,
                writes,
                clusters,
                baseline=(min(1.0, marks["fault"] / 2), marks["fault"]),
                impact=(marks["fault"], max(marks["restored"], marks["fault"] + 1.0)),
                vip_carriers=watcher.latest.vip_carriers if watcher.latest else None,
            )
        ),
        "series": [asdict(s) for s in goals.series(load.outcomes, marks["fault"], end_t)],
        "timings": found_timings,
        "lb_retries": report.lb_retries(topology, started_epoch),
        "all_events": options.all_events,
        "events": report.events_json(
            watcher.events
            if options.all_events
            else report.touched(watcher.events, topology, target)
        ),
        "final": describe(watcher.latest) if watcher.latest else {},
        "photo_jobs": jobs,
        **fault.extra,
    }
    result["path"] = str(report.write(result))
    return result
