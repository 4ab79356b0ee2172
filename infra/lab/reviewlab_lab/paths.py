"""Where the native lab keeps its rendered configs, data, sockets and logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reviewlab_common.topology import Topology

REPO = Path(__file__).resolve().parents[3]
# The lab's one topology file, which every node's process is told of (REVIEWLAB_TOPOLOGY).
TOPOLOGY_PATH = REPO / "infra" / "topology.toml"


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @classmethod
    def of(cls, topology: Topology) -> LabPaths:
        return cls(topology.lab.data_dir)

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_conf(self) -> Path:
        return self.conf / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def faults(self) -> Path:
        """Lab-only switches (e.g. added latency) that web servers read from disk."""
        return self.run / "faults"

    def data(self, node: str) -> Path:
        return self.root / "data" / node

    def node_run(self, node: str) -> Path:
        return self.run / node

    def log(self, node: str) -> Path:
        return self.logs / f"{node}.log"

    def pgdata(self, node: str) -> Path:
        return self.data(node) / "pgdata"
