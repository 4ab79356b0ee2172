"""The tour in the browser: each step's run, sent to the console as it ends, for its page at
/tour/NAME (reviewlab_console.tourpages).

Best effort, as the event feed (reviewlab_lab.consolefeed): a console that is down or slow
costs the tour at most half a second per step, and the tour itself never depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import consolefeed
from reviewlab_lab.tour.runner import Outcome
from reviewlab_lab.tour.step import Figure, Step

PAGE = "/tour/{name}"
API = "/api/tour/{name}"


def report(
    step: Step[Any],
    outcome: Outcome,
    *,
    catalogue: Sequence[Step[Any]],
    runtime: str,
    ran_at: datetime,
) -> dict[str, Any]:
    """What the console keeps of one run of STEP, one of CATALOGUE (the tour, in its order).

    The whole catalogue goes along, so the console can list and link steps that never ran.
    """
    names = [s.name for s in catalogue]
    if step.name not in names:
        raise ValueError(f"{step.name!r} is not one of the tour's steps ({', '.join(names)})")
    evidence = outcome.evidence
    return {
        "name": step.name,
        "number": names.index(step.name) + 1,
        "total": len(names),
        "title": step.title,
        "concept": step.concept,
        "claim": step.claim,
        "saw": step.saw,
        "repeat": step.repeat,
        "passed": outcome.passed,
        "verdict": outcome.verdict,
        "seconds": round(outcome.seconds, 3),
        "ran_at": ran_at.astimezone(UTC).isoformat(timespec="seconds"),
        "runtime": runtime,
        "figures": [_figure(f) for f in evidence.figures] if evidence else [],
        "shown": list(evidence.shown) if evidence else [],
        "steps": [{"name": s.name, "title": s.title} for s in catalogue],
    }


def _figure(figure: Figure) -> dict[str, Any]:
    value = figure.value
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # JSON has no NaN: the page shows it as the terminal did
    return {"label": figure.label, "value": value, "unit": figure.unit, "where": figure.where}


def publish(
    topology: Topology,
    step: Step[Any],
    outcome: Outcome,
    *,
    catalogue: Sequence[Step[Any]],
    runtime: str,
) -> str | None:
    """Send STEP's run to the console; the address of its page when the console took it.

    A step that is not one of CATALOGUE (a test's) is not sent.
    """
    if step.name not in {s.name for s in catalogue}:
        return None
    consoles = topology.of_kind("console")
    if not consoles:
        return None
    ran_at = datetime.now(UTC) - timedelta(seconds=outcome.seconds)
    body = report(step, outcome, catalogue=catalogue, runtime=runtime, ran_at=ran_at)
    if not consolefeed.send(topology, API.format(name=step.name), body):
        return None
    return consoles[0].host_url + PAGE.format(name=step.name)
