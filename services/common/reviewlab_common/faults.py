"""Lab-only fault switches, set by `reviewlab fault` and read from disk by the nodes.

They live in a file on the lab machine, so no network client (public or not) can flip them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reviewlab_common.topology import Topology


def fault_file(topology: Topology, node: str) -> Path:
    return topology.lab.data_dir / "run" / "faults" / f"{node}.json"


def switch_text(delay_ms: int) -> str:
    """A delay switch's contents: what DelaySwitch reads (0 or less means no added latency)."""
    return json.dumps({"delay_ms": max(delay_ms, 0)})


def set_delay(topology: Topology, node: str, delay_ms: int) -> None:
    """Write node NODE's switch on this machine's disk (0 or less removes it)."""
    path = fault_file(topology, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    if delay_ms <= 0:
        path.unlink(missing_ok=True)
        return
    path.write_text(switch_text(delay_ms))
    path.chmod(0o644)


class DelaySwitch:
    """Reads a node's added-latency setting, at most once per `refresh` seconds."""

    def __init__(self, topology: Topology, node: str, refresh: float = 0.5) -> None:
        self.path = fault_file(topology, node)
        self.refresh = refresh
        self._checked = 0.0
        self._delay_s = 0.0

    def delay_seconds(self) -> float:
        now = time.monotonic()
        if now - self._checked >= self.refresh:
            self._checked = now
            try:
                self._delay_s = float(json.loads(self.path.read_text())["delay_ms"]) / 1000
            except (FileNotFoundError, ValueError, KeyError):
                self._delay_s = 0.0
        return self._delay_s
