"""The move planner: which buckets move, from where, in what order; what it refuses."""

from __future__ import annotations

import pytest
from reviewlab_lab.resharding import plan
from reviewlab_lab.resharding.record import MoveRecord, StepRecord
from reviewlab_lab.shardcli import plan_text

SHARDS = ["reviews-0", "reviews-1", "reviews-2"]


def two_shards(buckets: int = 256) -> dict[int, str]:
    """The first map of a lab with two shards that hold buckets and one that starts empty."""
    return {b: "reviews-0" if b < buckets // 2 else "reviews-1" for b in range(buckets)}


def test_buckets_parse_as_lists_and_ranges() -> None:
    assert plan.parse_buckets("3,4,10-12", 256) == [3, 4, 10, 11, 12]
    assert plan.parse_buckets(" 7 , 7,6-7", 256) == [6, 7]
    assert plan.parse_buckets("255", 256) == [255]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("256", "bucket 256 does not exist: this lab's buckets are 0-255"),
        ("5-3", "runs backwards: write 3-5"),
        ("a", "'a' is not a bucket or a range of buckets"),
        ("1,,2", "'' is not a bucket"),
        ("-1", "'-1' is not a bucket"),
    ],
)
def test_a_bad_bucket_list_says_what_to_write(text: str, says: str) -> None:
    with pytest.raises(plan.PlanRefused, match=says):
        plan.parse_buckets(text, 256)


def test_a_move_is_one_step_per_source_in_bucket_order() -> None:
    steps = plan.check_move(two_shards(), SHARDS, [200, 3, 130, 1], "reviews-2")
    assert steps == [
        plan.Step("reviews-0", (1, 3)),
        plan.Step("reviews-1", (130, 200)),
    ]


def test_a_long_move_is_cut_into_bounded_cutovers() -> None:
    steps = plan.check_move(two_shards(), SHARDS, list(range(40)), "reviews-2")
    assert [len(s.buckets) for s in steps] == [16, 16, 8]
    assert [b for s in steps for b in s.buckets] == list(range(40))
    assert all(len(s.buckets) <= plan.MAX_STEP_BUCKETS for s in steps)


@pytest.mark.parametrize(
    ("buckets", "target", "moving", "says"),
    [
        ([1], "reviews-9", None, "unknown shard 'reviews-9': the shards are reviews-0, reviews-1"),
        ([1, 2], "reviews-0", None, "buckets 1, 2 already on reviews-0"),
        ([1], "reviews-2", "move-1: 3 buckets", "a move is already in progress \\(move-1"),
        ([], "reviews-2", None, "no buckets to move"),
        ([300], "reviews-2", None, "bucket 300 is not in the shard map"),
    ],
)
def test_a_move_that_cannot_run_is_refused_with_the_reason(
    buckets: list[int], target: str, moving: str | None, says: str
) -> None:
    with pytest.raises(plan.PlanRefused, match=says):
        plan.check_move(two_shards(), SHARDS, buckets, target, moving=moving)


def test_rebalance_onto_an_empty_shard_takes_the_top_of_each_range() -> None:
    placement = two_shards()
    moves = plan.rebalance(placement, SHARDS)
    assert list(moves) == ["reviews-2"]
    moved = moves["reviews-2"]
    # 256 over three shards: 86, 85, 85. reviews-0 gives 42, reviews-1 gives 43.
    assert moved == list(range(86, 128)) + list(range(213, 256))
    after = {**placement, **dict.fromkeys(moved, "reviews-2")}
    assert plan.counts(after, SHARDS) == {"reviews-0": 86, "reviews-1": 85, "reviews-2": 85}
    assert plan.rebalance(after, SHARDS) == {}


def test_rebalance_of_an_even_placement_moves_nothing() -> None:
    assert plan.rebalance(two_shards(), ["reviews-0", "reviews-1"]) == {}
    assert plan.rebalance({}, SHARDS) == {}


def test_rebalance_fills_the_emptiest_shard_first() -> None:
    placement = {b: "reviews-0" for b in range(9)}
    moves = plan.rebalance(placement, SHARDS)
    assert moves == {"reviews-1": [3, 4, 5], "reviews-2": [6, 7, 8]}


def test_counts_name_a_shard_with_no_buckets() -> None:
    assert plan.counts(two_shards(8), SHARDS) == {"reviews-0": 4, "reviews-1": 4, "reviews-2": 0}


def test_bucket_lists_print_as_ranges() -> None:
    assert plan_text([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert plan_text([]) == ""


def test_a_move_record_survives_etcd_as_json() -> None:
    move = MoveRecord("move-1", "reviews-2", [StepRecord("reviews-0", [1, 2], freeze_s=0.2)])
    again = MoveRecord.decode(move.encode())
    assert again == move
    assert again.describe() == "move-1: 2 buckets to reviews-2, 0/1 steps"
