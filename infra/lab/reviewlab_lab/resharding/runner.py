"""Start, resume or abort a move with its runner lock, its live view and its report."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from reviewlab_common.etcd import EtcdError
from reviewlab_common.topology import Topology

from reviewlab_lab import consolefeed
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.resharding import plan, record, view
from reviewlab_lab.resharding.mover import Mover, Progress
from reviewlab_lab.resharding.record import MoveRecord, StepRecord

# --resume and --abort wait this long for a killed runner's lock to expire.
LOCK_WAIT_S = record.LEASE_TTL_S + 2.0


def _lab_error(exc: EtcdError) -> LabFailed:
    return LabFailed(str(exc))


def start(
    topology: Topology,
    buckets: Sequence[int],
    target: str,
    *,
    live: bool = False,
    mover: Mover | None = None,
) -> dict[str, Any]:
    """Plan and run a move of BUCKETS to TARGET (with MOVER, e.g. one a chaos run holds);
    its report."""
    etcd = record.root(topology)
    mapping, _ = record.placement(etcd)
    known = record.registered(etcd, topology)
    existing = record.current(etcd)
    try:
        steps = plan.check_move(
            mapping,
            known,
            buckets,
            target,
            moving=existing[0].describe() if existing else None,
        )
    except plan.PlanRefused as exc:
        raise LabFailed(str(exc)) from exc
    move = MoveRecord(
        move_id=f"move-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}",
        target=target,
        steps=[StepRecord(s.source, list(s.buckets)) for s in steps],
    )
    lock = record.RunnerLock(etcd)
    try:
        lock.acquire()
    except EtcdError as exc:
        raise _lab_error(exc) from exc
    try:
        if not record.create(etcd, move):
            raise LabFailed("a move is already in progress: `reviewlab shard status` shows it")
        found = record.current(etcd)
        assert found is not None
        return _drive(topology, found[0], found[1], live, mover)
    finally:
        lock.release()


@contextmanager
def _current_move(topology: Topology, nothing_to: str) -> Iterator[tuple[MoveRecord, int]]:
    """The move in progress and its record's revision, under the runner lock (waiting out a
    killed runner's lease); LabFailed if there is none to NOTHING_TO."""
    etcd = record.root(topology)
    lock = record.RunnerLock(etcd)
    try:
        lock.acquire(wait_s=LOCK_WAIT_S)
    except EtcdError as exc:
        raise _lab_error(exc) from exc
    try:
        found = record.current(etcd)
        if found is None:
            raise LabFailed(
                f"no move to {nothing_to}: `reviewlab shard status` shows the placement"
            )
        yield found
    finally:
        lock.release()


def resume(topology: Topology, *, live: bool = False) -> dict[str, Any]:
    with _current_move(topology, "resume") as (move, revision):
        return _drive(topology, move, revision, live)


def abort(topology: Topology) -> list[str]:
    with _current_move(topology, "abort") as (move, revision):
        return Mover(topology).abort(move, revision)


def rebalance_plan(topology: Topology) -> dict[str, list[int]]:
    etcd = record.root(topology)
    mapping, _ = record.placement(etcd)
    return plan.rebalance(mapping, record.registered(etcd, topology))


def _drive(
    topology: Topology, move: MoveRecord, revision: int, live: bool, mover: Mover | None = None
) -> dict[str, Any]:
    mover = mover or Mover(topology, Progress())
    progress = mover.progress
    begun = time.monotonic()
    outcome = "done"
    moving = sum(len(s.buckets) for s in move.steps)
    consolefeed.tell(
        topology, "shard", f"shard move {move.move_id}: {moving} buckets to {move.target}"
    )
    with view.MoveView(topology, progress, live) as screen:
        try:
            revision = mover.run(move, revision, stop=lambda: False)
            record.finish(mover.etcd, revision)
        except KeyboardInterrupt:
            outcome = "interrupted"
        except (LabFailed, EtcdError) as exc:
            outcome = f"stopped: {exc}"
    result = view.report(
        progress,
        move_id=move.move_id,
        target=move.target,
        outcome=outcome,
        served=screen.served,
        seconds=time.monotonic() - begun,
        steps=[asdict(s) for s in move.steps],
    )
    result["path"] = str(view.write(result))
    freeze = result["freeze_max_s"]
    consolefeed.tell(
        topology,
        "shard",
        f"shard move {move.move_id} {outcome}: {progress.rows_copied} rows copied"
        + (f", longest write freeze {1000 * freeze:.0f} ms" if freeze is not None else ""),
    )
    return result


def placement(topology: Topology) -> dict[int, str]:
    return record.placement(record.root(topology))[0]


def restore(topology: Topology, before: dict[int, str]) -> list[dict[str, Any]]:
    """Move every bucket that is not where BEFORE had it back there (one move per shard)."""
    now = placement(topology)
    back: dict[str, list[int]] = {}
    for bucket, shard in before.items():
        if now.get(bucket) != shard:
            back.setdefault(shard, []).append(bucket)
    return [start(topology, buckets, shard) for shard, buckets in sorted(back.items())]
