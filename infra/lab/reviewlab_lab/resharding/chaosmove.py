"""The chaos scenario primary-loss-during-move: a shard's primary is lost while buckets move
off it. The move is held right after its copy, the source's primary is lost for good, the
move goes on (retrying until Patroni promotes the replica) and finishes; the buckets are
moved back when the fault is undone."""

from __future__ import annotations

import threading
import time
from typing import Any

from reviewlab_common import shards
from reviewlab_common.topology import Topology

from reviewlab_lab.errors import LabFailed
from reviewlab_lab.resharding import record, runner
from reviewlab_lab.resharding.mover import Mover, Progress

TARGET = "reviews-2"
# How many of the load's products (on the source shard) have their buckets moved.
PRODUCTS_MOVED = 3
HELD_WITHIN_S = 30.0
MOVE_WITHIN_S = 150.0


class MoveUnderFault:
    """A move off the shard of SOURCE_NODE, held after its copy until the node is lost."""

    def __init__(self, topology: Topology, source: str, products: range) -> None:
        self.topology = topology
        self.before = runner.placement(topology)
        owned = [p for p in products if self.before[self._bucket(p)] == source]
        self.buckets = sorted({self._bucket(p) for p in owned[:PRODUCTS_MOVED]})
        if not self.buckets:
            raise LabFailed(f"the load writes no product on {source}: nothing to move")
        self.mover = Mover(topology, Progress())
        self.mover.hold_at = record.COPIED
        self.result: dict[str, Any] = {}
        self.error = ""
        self._thread = threading.Thread(target=self._move, daemon=True, name="chaos-move")

    def _bucket(self, product_id: int) -> int:
        return shards.bucket_of(product_id, self.topology.lab.buckets)

    def _move(self) -> None:
        try:
            self.result = runner.start(self.topology, self.buckets, TARGET, mover=self.mover)
        except LabFailed as exc:
            self.error = str(exc)

    def start_and_hold(self) -> None:
        """Start the move; return once it is held after its copy."""
        self._thread.start()
        limit = time.monotonic() + HELD_WITHIN_S
        while "held at" not in " ".join(self.mover.progress.notes):
            if time.monotonic() > limit or not self._thread.is_alive():
                raise LabFailed(f"the move did not reach its hold: {self.error or 'no answer'}")
            time.sleep(0.1)

    def go_on(self) -> None:
        self.mover.release.set()

    def finish_and_move_back(self) -> dict[str, Any]:
        """Wait for the move, then put every bucket back; what the move reported."""
        self.go_on()
        self._thread.join(MOVE_WITHIN_S)
        if record.current(record.root(self.topology)) is not None:
            runner.resume(self.topology)  # a runner that gave up: the record finishes it
        runner.restore(self.topology, self.before)
        return {
            "buckets": self.buckets,
            "target": TARGET,
            "outcome": self.result.get("outcome", self.error or "did not finish"),
            "freezes_s": self.result.get("freezes_s"),
            "retries": self.result.get("retries"),
            "rows_copied": self.result.get("rows_copied"),
            "verified": [s.get("verified") for s in self.result.get("steps", [])],
            "notes": self.result.get("notes", []),
            "map_restored": runner.placement(self.topology) == self.before,
        }
