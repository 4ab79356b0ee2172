"""Chaos runs as the console sees them: started from the page (the same runner as
`reviewlab chaos run`, as a child process), or announced by a run started from the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reviewlab_common.topology import RUNTIME_ENV

from reviewlab_console.events import EventBus

# A run that announced itself and then went silent this long is taken as gone.
SILENT_S = 900.0
# The env the runner reads for where it writes its report (reviewlab_lab.chaos.report).
REPORTS_ENV = "REVIEWLAB_REPORTS"


class ChaosRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Run:
    scenario: str
    source: str  # "page" or "cli"
    started_at: float
    phase: str = "starting"
    last_heard: float = 0.0
    finished: bool = False
    report: str | None = None


def scenarios() -> dict[str, str]:
    """Every scenario `reviewlab chaos list` shows: name -> what happens."""
    from reviewlab_lab.chaos.scenarios import SCENARIOS

    return {s.name: s.about for s in SCENARIOS.values()}


class ChaosRuns:
    def __init__(self, bus: EventBus, reports: Path) -> None:
        self.bus = bus
        self.reports = reports
        self.current: Run | None = None
        self.last: Run | None = None
        self.process: asyncio.subprocess.Process | None = None

    def running(self) -> Run | None:
        run = self.current
        if run is None or run.finished:
            return None
        if run.source == "cli" and time.time() - run.last_heard > SILENT_S:
            return None
        return run

    def status(self) -> dict[str, Any]:
        run = self.running() or self.last or self.current
        return {
            "running": self.running() is not None,
            "run": asdict(run) if run else None,
            "scenarios": scenarios(),
        }

    async def start(self, scenario: str) -> Run:
        known = scenarios()
        if scenario not in known:
            raise ChaosRefused(
                400, "unknown_scenario", f"no scenario {scenario!r}; scenarios: {', '.join(known)}"
            )
        if (busy := self.running()) is not None:
            raise ChaosRefused(
                409,
                "chaos_running",
                f"a chaos run ({busy.scenario}, from the {busy.source}) is going: "
                "wait until it reports, then start another",
            )
        if os.environ.get(RUNTIME_ENV) == "compose":
            raise ChaosRefused(
                503,
                "chaos_from_machine",
                "under Compose a chaos run acts on containers from the machine: run "
                f"`reviewlab chaos run {scenario}` there; its phases show here live",
            )
        self.reports.mkdir(parents=True, exist_ok=True)
        log = (self.reports / "chaos-console.log").open("ab")
        binary = Path(sys.executable).with_name("reviewlab")
        self.process = await asyncio.create_subprocess_exec(
            str(binary), "chaos", "run", scenario, "--no-live",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            env=os.environ | {REPORTS_ENV: str(self.reports)},
        )  # fmt: skip
        log.close()
        now = time.time()
        self.current = Run(scenario, "page", now, last_heard=now)
        self.bus.note("chaos", f"chaos {scenario} started from the console")
        asyncio.get_running_loop().create_task(self._wait(self.current, self.process))
        return self.current

    async def _wait(self, run: Run, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        run.finished = True
        self.last = run
        outcome = "finished" if code == 0 else f"ended with exit code {code}"
        self.bus.note("chaos", f"chaos {run.scenario} {outcome} (log: chaos-console.log)")

    def heard(self, message: dict[str, Any]) -> None:
        """A phase the runner reported (POST /api/lab-events)."""
        now = time.time()
        scenario = str(message.get("scenario", "?"))
        state = str(message.get("state", "phase"))
        run = self.current
        if run is None or run.finished or run.scenario != scenario:
            run = self.current = Run(scenario, "cli", now, last_heard=now)
        run.last_heard = now
        run.phase = str(message.get("text", run.phase))
        if message.get("report"):
            run.report = Path(str(message["report"])).name
        if state == "finished":
            run.finished = True
            self.last = run
