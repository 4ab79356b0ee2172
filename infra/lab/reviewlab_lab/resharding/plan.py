"""Which buckets move, from where, in what order: pure functions over a placement.

A placement is the shard map (bucket -> shard). A move is cut into steps, one per source
shard, each with its buckets in ascending order: a step is one cutover, so its write freeze
covers only its own buckets and one source's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# One cutover moves at most this many buckets: the freeze grows with what it must verify.
MAX_STEP_BUCKETS = 16


class PlanRefused(ValueError):
    """The move cannot be planned; the message says what to change."""


@dataclass(frozen=True)
class Step:
    source: str
    buckets: tuple[int, ...]


def parse_buckets(text: str, bucket_count: int) -> list[int]:
    """'3,4,10-12' -> [3, 4, 10, 11, 12]; refuses what is not a bucket of this lab."""
    found: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise PlanRefused(
                f"{part!r} is not a bucket or a range of buckets: write e.g. 3,4,10-12"
            )
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise PlanRefused(f"bucket range {part} runs backwards: write {high}-{low}")
        if high >= bucket_count:
            raise PlanRefused(
                f"bucket {high} does not exist: this lab's buckets are 0-{bucket_count - 1}"
            )
        found.update(range(low, high + 1))
    return sorted(found)


def steps_for(placement: Mapping[int, str], buckets: Sequence[int], target: str) -> list[Step]:
    """The steps that move BUCKETS to TARGET: grouped by source shard (sorted by name), each
    at most MAX_STEP_BUCKETS buckets, ascending."""
    by_source: dict[str, list[int]] = {}
    for bucket in sorted(set(buckets)):
        by_source.setdefault(placement[bucket], []).append(bucket)
    result: list[Step] = []
    for source in sorted(by_source):
        chosen = by_source[source]
        for start in range(0, len(chosen), MAX_STEP_BUCKETS):
            result.append(Step(source, tuple(chosen[start : start + MAX_STEP_BUCKETS])))
    return result


def check_move(
    placement: Mapping[int, str],
    registered: Sequence[str],
    buckets: Sequence[int],
    target: str,
    *,
    moving: str | None = None,
) -> list[Step]:
    """The steps of moving BUCKETS to TARGET, or PlanRefused saying why not.

    MOVING describes a move already in progress (there may be only one at a time)."""
    if moving is not None:
        raise PlanRefused(
            f"a move is already in progress ({moving}): finish it with "
            "`reviewlab shard move --resume` or undo it with `--abort`"
        )
    if target not in registered:
        raise PlanRefused(
            f"unknown shard {target!r}: the shards are {', '.join(sorted(registered))} "
            "(`reviewlab shard add NAME` registers one the topology declares)"
        )
    if not buckets:
        raise PlanRefused("no buckets to move: name some, e.g. 3,4,10-12")
    unknown = [b for b in buckets if b not in placement]
    if unknown:
        raise PlanRefused(f"bucket {unknown[0]} is not in the shard map")
    already = [b for b in buckets if placement[b] == target]
    if already:
        shown = ", ".join(str(b) for b in already[:8])
        raise PlanRefused(
            f"bucket{'s' if len(already) > 1 else ''} {shown} already on {target}: "
            "a move goes to another shard"
        )
    return steps_for(placement, buckets, target)


def counts(placement: Mapping[int, str], registered: Sequence[str]) -> dict[str, int]:
    """Buckets per registered shard (0 for a shard that holds none)."""
    result = dict.fromkeys(registered, 0)
    for shard in placement.values():
        result[shard] = result.get(shard, 0) + 1
    return result


def rebalance(placement: Mapping[int, str], registered: Sequence[str]) -> dict[str, list[int]]:
    """Buckets to move so every registered shard holds an even share: target -> buckets.

    Each shard above its share gives its highest-numbered buckets first (so the ranges the
    first map made stay contiguous), to the shards below theirs, the emptiest first.
    """
    shards = sorted(registered)
    total = len(placement)
    if not shards or not total:
        return {}
    share = {
        s: total // len(shards) + (1 if i < total % len(shards) else 0)
        for i, s in enumerate(shards)
    }
    held = {s: sorted(b for b, owner in placement.items() if owner == s) for s in shards}
    spare: list[int] = []
    for shard in shards:
        extra = len(held[shard]) - share[shard]
        if extra > 0:
            spare += held[shard][-extra:]
    spare.sort()
    wanting = sorted(
        (s for s in shards if len(held[s]) < share[s]), key=lambda s: (len(held[s]), s)
    )
    moves: dict[str, list[int]] = {}
    for shard in wanting:
        need = share[shard] - len(held[shard])
        moves[shard], spare = sorted(spare[:need]), spare[need:]
    return {s: b for s, b in moves.items() if b}
