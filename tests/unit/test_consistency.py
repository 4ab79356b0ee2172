"""The read-your-writes token: shard -> commit LSN."""

from __future__ import annotations

from reviewlab_web import consistency


def test_parse_keeps_well_formed_parts_only() -> None:
    token = "reviews-0=0/3000060, reviews-1=1/A0 ,junk,reviews-2=zz/1,=0/1"
    assert consistency.parse(token) == {"reviews-0": "0/3000060", "reviews-1": "1/A0"}
    assert consistency.parse(None) == {}


def test_lsn_order_compares_both_halves() -> None:
    assert consistency.lsn_value("1/0") > consistency.lsn_value("0/FFFFFFFF")
    assert consistency.lsn_value("0/10") == 16


def test_merge_keeps_the_highest_position_per_shard() -> None:
    token = {"reviews-0": "0/500", "reviews-1": "0/100"}
    merged = consistency.merge(token, "reviews-0", "0/400")
    assert merged["reviews-0"] == "0/500"
    merged = consistency.merge(merged, "reviews-1", "0/200")
    assert merged == {"reviews-0": "0/500", "reviews-1": "0/200"}
    assert consistency.parse(consistency.render(merged)) == merged
