"""One move, step by step: capture, copy, catch up, cut over, flip, clean up; resumable.

Every phase is recorded in etcd before the next begins, and every phase can run again: a
runner that stopped anywhere (Ctrl-C, killed, a primary lost) is resumed from the record.
Until a step's flip the map points at its source, which holds every row; after it, at the
target, which was verified equal to the frozen source before the flip.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psycopg
from reviewlab_common import fence
from reviewlab_common.etcd import EtcdError
from reviewlab_common.topology import Topology

from reviewlab_lab.dbmigrate import superuser_connection
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.resharding import fencing, record, webtier
from reviewlab_lab.resharding.record import (
    ABORTED,
    CAPTURE,
    COPIED,
    DONE,
    FLIPPED,
    PLANNED,
    MoveRecord,
    StepRecord,
)

# Catch-up ends when this few changes wait, or after this many rounds: the freeze takes the rest.
CAUGHT_UP_CHANGES = 20
CATCH_UP_ROUNDS = 50
# A cutover that would freeze writes longer than this gives up before the flip and reopens.
FREEZE_BUDGET_S = fence.FREEZE_LIMIT_S - 0.5
CUTOVER_ATTEMPTS = 3
# The source's closing lapses by itself after this long, should the runner die mid-cutover.
CLOSE_LEASE_S = 10.0
# How long the cutover waits for the target's replicas, and for the web servers' new map.
REPLICAS_S = 1.0
WEB_MAP_S = 1.0
# A lost primary is replaced in about Patroni's ttl (20 s): a step is retried this long.
RETRY_WINDOW_S = 90.0
# Lab-only: a runner started with this set to a phase stops there for HOLD_S, so a test or a
# chaos run can kill it, or lose a primary, at a known point of the move.
HOLD_ENV = "REVIEWLAB_MOVE_HOLD"
HOLD_S = 60.0


class VerificationFailed(LabFailed):
    """The target's copy differs from the frozen source: the flip did not happen."""


class FreezeTooLong(RuntimeError):
    """The cutover would have frozen writes beyond its budget: it reopened the source."""


@dataclass
class Progress:
    """What a live view shows; the mover updates it as it goes."""

    phase: str = "starting"
    step: int = 0
    steps: int = 0
    rows_copied: int = 0
    copy_s: float = 0.0
    changes_replayed: int = 0
    lag: int = 0
    freezes: list[float] = field(default_factory=list)
    retries: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")


class Mover:
    def __init__(self, topology: Topology, progress: Progress | None = None) -> None:
        self.topology = topology
        # The map's revision after this runner's last flip, and when its freeze began.
        self.map_revision = 0
        self._frozen_at: float | None = None
        # Where the current freeze's time went: phase -> milliseconds.
        self._parts: dict[str, float] = {}
        self._last_mark = 0.0
        self.etcd = record.root(topology)
        self.progress = progress or Progress()
        self.hold_at = os.environ.get(HOLD_ENV, "")
        # Set to end a hold early (a chaos run holds the move, breaks a node, lets it go).
        self.release = threading.Event()

    @contextmanager
    def shard(self, name: str) -> Iterator[fencing.Conn]:
        cluster = self.topology.clusters[name]
        with superuser_connection(self.topology, cluster, "reviews") as conn:
            yield conn

    # The move ---------------------------------------------------------------------------
    def run(self, move: MoveRecord, revision: int, stop: Callable[[], bool]) -> int:
        """Every step of MOVE not done yet; the record's last revision."""
        self.progress.steps = len(move.steps)
        for index, step in enumerate(move.steps, 1):
            self.progress.step = index
            if step.phase in (DONE, ABORTED):
                continue
            revision = self._with_retries(move, step, revision)
            if stop():
                break
        return revision

    def _with_retries(self, move: MoveRecord, step: StepRecord, revision: int) -> int:
        limit = time.monotonic() + RETRY_WINDOW_S
        while True:
            try:
                return self._step(move, step, revision)
            except (psycopg.OperationalError, EtcdError, FreezeTooLong) as exc:
                if time.monotonic() > limit:
                    raise LabFailed(
                        f"step {self.progress.step} ({step.source} -> {move.target}) did not "
                        f"finish in {RETRY_WINDOW_S:.0f} s: {exc}. The map points at a complete "
                        "copy; `reviewlab shard move --resume` finishes the move, `--abort` "
                        "undoes what is not flipped"
                    ) from exc
                self.progress.retries += 1
                self.progress.note(f"retrying step {self.progress.step}: {_first_line(exc)}")
                time.sleep(1.0)
                found = record.current(self.etcd)
                if found is None:
                    raise LabFailed("the move record vanished: another runner ended it") from exc
                fresh, revision = found
                step.phase = fresh.steps[move.steps.index(step)].phase

    def _step(self, move: MoveRecord, step: StepRecord, revision: int) -> int:
        buckets = step.buckets
        with self.shard(step.source) as source, self.shard(move.target) as target:
            if step.phase == COPIED and not self._copy_still_good(step, source):
                step.phase = PLANNED
            if step.phase in (PLANNED, CAPTURE):
                revision = self._copy(move, step, revision, source, target)
            if step.phase == COPIED:
                self._catch_up(step, source, target)
                revision = self._cutover(move, step, revision, source, target)
            if step.phase == FLIPPED:
                self._open_target(move, step, source, target)
                self.progress.phase = f"deleting the old copies on {step.source}"
                fencing.delete_copies(source, buckets)
                step.phase = DONE
                revision = record.save(self.etcd, move, revision)
                self.progress.note(f"step {self.progress.step}: done, old copies deleted")
        return revision

    def _copy(
        self,
        move: MoveRecord,
        step: StepRecord,
        revision: int,
        source: fencing.Conn,
        target: fencing.Conn,
    ) -> int:
        buckets = step.buckets
        mapping, _ = record.placement(self.etcd)
        if any(mapping.get(b) != step.source for b in buckets):
            raise LabFailed(f"the map no longer puts buckets {list(buckets)} on {step.source}")
        self.progress.phase = f"capturing changes on {step.source}"
        fencing.set_fence(target, buckets, fence.CLOSED)
        fencing.set_fence(source, buckets, fence.CAPTURE)
        fencing.forget_changes(source, buckets)  # the copy below starts after this
        step.phase, step.attempts = CAPTURE, step.attempts + 1
        revision = record.save(self.etcd, move, revision)
        self.progress.phase = f"copying {len(buckets)} buckets {step.source} -> {move.target}"
        begun = time.monotonic()
        rows = fencing.copy_buckets(source, target, buckets)
        self.progress.copy_s += time.monotonic() - begun
        self.progress.rows_copied += rows
        step.rows_copied = rows
        step.phase = COPIED
        revision = record.save(self.etcd, move, revision)
        self._hold(COPIED)
        return revision

    def _copy_still_good(self, step: StepRecord, source: fencing.Conn) -> bool:
        """After a copy, the target plus the source's change log is the whole bucket for as
        long as the source never opened the bucket without capture: then a resumed step goes
        on from the log (a cutover that died left a closing: capture again)."""
        states = set(fencing.fence_states(source, step.buckets).values())
        if fence.OPEN in states:
            return False
        if states != {fence.CAPTURE}:
            fencing.set_fence(source, step.buckets, fence.CAPTURE)
        return True

    def _catch_up(self, step: StepRecord, source: fencing.Conn, target: fencing.Conn) -> None:
        buckets = step.buckets
        self.progress.phase = "catching up"
        for _ in range(CATCH_UP_ROUNDS):
            replayed = fencing.replay_changes(source, target, buckets)
            self.progress.changes_replayed += replayed
            step.changes_replayed += replayed
            self.progress.lag = fencing.pending_changes(source, buckets)
            if self.progress.lag <= CAUGHT_UP_CHANGES:
                break

    def _cutover(
        self,
        move: MoveRecord,
        step: StepRecord,
        revision: int,
        source: fencing.Conn,
        target: fencing.Conn,
    ) -> int:
        """Freeze the source's buckets, replay the rest, verify, flip; reopen on failure."""
        buckets = step.buckets
        for attempt in range(1, CUTOVER_ATTEMPTS + 1):
            self.progress.phase = (
                f"cutover (attempt {attempt}): writes to {len(buckets)} buckets wait"
            )
            # Read before the freeze; the flip fails (and reopens) if the map changed since.
            placed = record.placement(self.etcd)
            frozen_at = self._last_mark = time.monotonic()
            self._parts = {}
            fencing.set_fence(source, buckets, fence.CLOSED, lease_s=CLOSE_LEASE_S)
            self._mark("close source")
            try:
                self.progress.changes_replayed += fencing.replay_changes(source, target, buckets)
                self.progress.lag = 0
                self._mark("replay")
                step.verified = self._verify(step, source, target)
                self._mark("verify")
                self._replicas_caught_up(target)
                self._mark("target replicas")
                if time.monotonic() - frozen_at > FREEZE_BUDGET_S:
                    raise FreezeTooLong(
                        f"the cutover reached {time.monotonic() - frozen_at:.2f} s before its flip"
                    )
                mapping, map_revision = placed
                mapping.update(dict.fromkeys(buckets, move.target))
                step.phase = FLIPPED
                try:
                    revision = record.flip(self.etcd, move, revision, mapping, map_revision)
                except EtcdError:
                    step.phase = COPIED
                    raise
                self._mark("flip")
            except FreezeTooLong as exc:
                fencing.set_fence(source, buckets, fence.CAPTURE)
                self.progress.note(f"cutover given up, writes reopened: {exc}")
                fencing.replay_changes(source, target, buckets)
                continue
            except BaseException:
                if step.phase != FLIPPED:
                    _reopen(source, buckets)
                raise
            self.map_revision = revision
            self._frozen_at = frozen_at
            return revision
        raise FreezeTooLong(f"{CUTOVER_ATTEMPTS} cutovers would each have frozen writes too long")

    def _open_target(
        self, move: MoveRecord, step: StepRecord, source: fencing.Conn, target: fencing.Conn
    ) -> None:
        """After the flip: close the source for good, replay what a lapsed closing let in,
        wait for every web server's new map, open the target. Finished even on Ctrl-C."""
        buckets = step.buckets
        interrupted: BaseException | None = None
        while True:
            try:
                fencing.set_fence(source, buckets, fence.CLOSED)
                self.progress.changes_replayed += fencing.replay_changes(source, target, buckets)
                self._mark("close source for good")
                revision = self.map_revision
                behind = (
                    webtier.wait_for_map(self.topology, revision, WEB_MAP_S) if revision else []
                )
                if behind:
                    self.progress.note(f"web servers without the new map yet: {', '.join(behind)}")
                self._mark("web servers' map")
                fencing.set_fence(target, buckets, fence.OPEN)
                self._mark("open target")
                break
            except KeyboardInterrupt as exc:
                interrupted = exc  # the target must open: the map already points at it
        frozen_at = self._frozen_at
        if frozen_at is not None:
            step.freeze_s = round(time.monotonic() - frozen_at, 3)
            step.freeze_parts_ms = dict(self._parts)
            self.progress.freezes.append(step.freeze_s)
            self._frozen_at = None
        self.progress.note(
            f"step {self.progress.step}: flipped to {move.target}"
            + (f", writes frozen {step.freeze_s:.3f} s" if step.freeze_s is not None else "")
        )
        if interrupted is not None:
            raise interrupted

    def _verify(
        self, step: StepRecord, source: fencing.Conn, target: fencing.Conn
    ) -> dict[str, object]:
        self.progress.phase = "verifying row counts and checksums"
        before = fencing.digests(source, step.buckets)
        after = fencing.digests(target, step.buckets)
        differ = [b for b in step.buckets if before[b] != after[b]]
        if differ:
            raise VerificationFailed(
                f"bucket {differ[0]} differs after the copy (source {before[differ[0]]}, "
                f"target {after[differ[0]]}); nothing was flipped"
            )
        return {
            "reviews": sum(before[b][0] for b in step.buckets),
            "votes": sum(before[b][1] for b in step.buckets),
            "buckets_checked": len(step.buckets),
        }

    def _mark(self, part: str) -> None:
        now = time.monotonic()
        self._parts[part] = round((now - self._last_mark) * 1000, 1)
        self._last_mark = now

    def _hold(self, phase: str) -> None:
        if self.hold_at == phase:
            self.progress.note(f"held at {phase} for {HOLD_S:.0f} s ({HOLD_ENV})")
            self.hold_at = ""  # once: a retry of the step goes on
            self.release.wait(HOLD_S)

    @staticmethod
    def _replicas_caught_up(target: fencing.Conn) -> None:
        lsn = fencing.current_lsn(target)
        limit = time.monotonic() + REPLICAS_S
        while not fencing.replicas_replayed(target, lsn) and time.monotonic() < limit:
            time.sleep(0.005)

    # Undo -------------------------------------------------------------------------------
    def abort(self, move: MoveRecord, revision: int) -> list[str]:
        """Undo every step not flipped yet; what happened to each."""
        said = []
        for step in move.steps:
            if step.phase in (FLIPPED, DONE):
                said.append(f"buckets {_span(step.buckets)} stay on {move.target}: already flipped")
                continue
            if step.phase == ABORTED:
                continue
            with self.shard(step.source) as source, self.shard(move.target) as target:
                fencing.set_fence(source, step.buckets, fence.OPEN)
                fencing.forget_changes(source, step.buckets)
                fencing.delete_copies(target, step.buckets)
            step.phase = ABORTED
            revision = record.save(self.etcd, move, revision)
            said.append(f"buckets {_span(step.buckets)} stay on {step.source}; copies deleted")
        record.finish(self.etcd, revision)
        return said


def _reopen(source: fencing.Conn, buckets: tuple[int, ...] | list[int]) -> None:
    """Writes flow to the source again (changes still captured); best effort: a closing
    left in place lapses by its lease."""
    with suppress(psycopg.Error, KeyboardInterrupt):
        fencing.set_fence(source, buckets, fence.CAPTURE)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _span(buckets: list[int] | tuple[int, ...]) -> str:
    items = sorted(buckets)
    return f"{items[0]}-{items[-1]}" if len(items) > 2 else ",".join(map(str, items))
